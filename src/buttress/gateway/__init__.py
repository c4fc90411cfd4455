"""The OpenAI-compatible gateway: an ASGI edge over the same runtime the Python client uses.

Owns: the HTTP app (``app.py``), OpenAI wire parsing and response building (``wire.py``),
virtual keys stored hashed (``keys.py``), per-key rate limits (``limits.py``), per-key budgets
(``key_budgets.py``) and the server process (``server.py``). It imports the client, the runtime,
costs and the ledger; nothing imports it but the CLI. Must not import ``buttress.cli``.

Starlette and uvicorn come from the ``gateway`` extra and are imported only here.
"""
