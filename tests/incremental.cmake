# Incremental checkpoints: saves that reference their parent's unchanged
# tensors, loading across the chain, the chain policy and damaged chains.
ckpt_add_test(incremental_tests SOURCES incremental/chain_test.cpp incremental/manager_chain_test.cpp LABELS incremental)

# The ckpt tool on chains: info, verify, convert.
if(TARGET ckpt_cli)
  ckpt_add_test(incremental_cli_tests SOURCES incremental/cli_chain_test.cpp LABELS incremental cli)
  if(TARGET incremental_cli_tests)
    target_compile_definitions(incremental_cli_tests PRIVATE CKPT_CLI_PATH="$<TARGET_FILE:ckpt_cli>")
    add_dependencies(incremental_cli_tests ckpt_cli)
  endif()
endif()
