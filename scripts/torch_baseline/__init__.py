"""PyTorch references for the benchmarks and peers (scripts/ puts its folder on sys.path):
models.py (zoo teachers and mirrors of the Linen blocks), finetune.py (the training recipe)."""
