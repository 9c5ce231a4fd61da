"""The class relay: an engine of the local server that forwards to an upstream Videos API for many students.

One upstream key (the teacher's, from ``SORA_NB_UPSTREAM_KEY``), a token and a budget per student, one upstream
job per distinct request. The parts: :mod:`.storage` (the ledger, SQLite), :mod:`.users` (tokens and the
``sora-nb users`` commands), :mod:`.pricing`, :mod:`.engine` (upstream jobs: submit, follow, fetch once),
:mod:`.routes` (the students' Videos API), :mod:`.admin` (the teacher's page and usage rows).

Light on purpose: importing this package loads no web framework (the ``users`` commands need none).
"""
