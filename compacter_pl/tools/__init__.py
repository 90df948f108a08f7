"""The tools that drive the product: the commands beside Lightning's (`commands/`: params, export, truncation, and
the entries of the three below), the sweep and its report (`sweep/`), the training-cost benchmark (`bench/`), the
HTTP server of many adapters (`serve/`), and the paper's published numbers they put beside ours (`paper.py`,
`paper_results.yaml`; `methods.py` lists the registered methods with what the paper says of each, by key). They
reuse the product's parser, trainer and training step; nothing below `compacter_pl/tools/` imports them, and they
stay smaller than the core they drive.
"""
