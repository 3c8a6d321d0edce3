# Incremental checkpoints: saves that reference their parent's unchanged
# tensors, loading across the chain, the chain policy and damaged chains.
ckpt_add_test(incremental_tests SOURCES incremental/chain_test.cpp LABELS incremental)
