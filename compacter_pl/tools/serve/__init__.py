"""`cli.py serve`: many task adapters on one base model over HTTP, with LitServe (the optional `serve` extra).

Flow: `commands/serve.py` (the options, checked before anything loads; the server's start and stop) ->
`adapters.find_adapters` (the export folders and their configs) -> `api.AdapterAPI` (LitServe's LitAPI: each
inference worker loads an `AdapterBank`; the requests of a batch, of any adapters, run as one mixed batch).
`adapters` imports no LitServe; `api` does, and only the serve command imports it.
"""
