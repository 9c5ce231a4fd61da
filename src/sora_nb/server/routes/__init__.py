"""The endpoints of the local Videos API, one module an idea: ``videos`` (create, list, retrieve, delete,
remix, edit, extend), ``content`` (downloads), ``files`` (uploads), ``characters`` and ``info``; for the
self-hosted engine dialects ``engines`` (their creates, vLLM-Omni's /sync, LocalAI's synchronous create) and
``discovery`` (/v1/models, /server_info, /health and the like).

Each handler takes what it shares with the others from ``Context.of(request)``; ``app.py`` lists the paths.
"""
