"""The endpoints of the local Videos API, one module an idea: ``videos`` (create, list, retrieve, delete,
remix, edit, extend), ``content`` (downloads), ``files`` (uploads), ``characters`` and ``info``.

Each handler takes what it shares with the others from ``Context.of(request)``; ``app.py`` lists the paths.
"""
