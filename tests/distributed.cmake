# Distributed checkpoints (docs/distributed.md). In one process: the geometry
# of pieces, the save plan, the index, and whole saves and loads through the
# single-process communicator and through ranks on threads (label
# distributed, run under the sanitizers). Over MPI (label mpi): save with 1 to
# 4 ranks and load with 1 to 4 under another split, ranks SIGKILLed in every
# phase of a save, a full disk on one rank, the index read by Python with
# numpy alone, and the demo's resume across world sizes.
ckpt_add_test(distributed_tests
  SOURCES
    distributed/geometry_test.cpp
    distributed/plan_test.cpp
    distributed/index_test.cpp
    distributed/single_process_test.cpp
  LABELS distributed)
ckpt_add_test(distributed_rank_tests SOURCES distributed/ranks_test.cpp LABELS distributed threads)
# Incremental distributed checkpoints: chains of saves referencing unchanged
# boxes, loaded under any split; the chain policy; a damaged parent.
ckpt_add_test(distributed_incremental_tests SOURCES distributed/incremental_test.cpp LABELS distributed incremental threads)
# CheckpointManager across thread ranks: policies, preemption, retention,
# restores, async failures, the job's lock (docs/manager.md, "Across ranks").
ckpt_add_test(distributed_manager_tests SOURCES distributed/manager_test.cpp LABELS distributed manager threads)

# A shard in a plain Checkpoint must fail to compile with the message that
# says which class to use.
ckpt_test_selected(selected distributed no-asan)
if(selected)
  add_executable(distributed_compile_fail_shard EXCLUDE_FROM_ALL distributed/compile_fail_shard.cpp)
  target_link_libraries(distributed_compile_fail_shard PRIVATE ckpt::ckpt)
  add_test(NAME distributed.compile_fail.shard_in_plain_checkpoint
           COMMAND ${CMAKE_COMMAND} --build ${PROJECT_BINARY_DIR} --target distributed_compile_fail_shard --config $<CONFIG>)
  set_tests_properties(distributed.compile_fail.shard_in_plain_checkpoint PROPERTIES
    LABELS "distributed;no-asan"
    PASS_REGULAR_EXPRESSION "describe a piece of a distributed tensor: save and load the state with ckpt::DistributedCheckpoint")
endif()

# Over MPI: a driver every rank of a job runs (mpi_tool.cpp), and scripts that
# run it with mpirun. OpenMPI refuses to run as root without the two
# variables, and needs --oversubscribe for more ranks than cores.
set(ckpt_mpi_environment OMPI_ALLOW_RUN_AS_ROOT=1 OMPI_ALLOW_RUN_AS_ROOT_CONFIRM=1)
if(TARGET ckpt::mpi AND MPIEXEC_EXECUTABLE)
  ckpt_test_selected(selected mpi no-asan)
  if(selected)
    add_executable(distributed_mpi_tool distributed/mpi_tool.cpp)
    target_link_libraries(distributed_mpi_tool PRIVATE ckpt::mpi)
    target_include_directories(distributed_mpi_tool PRIVATE ${CMAKE_CURRENT_SOURCE_DIR})
    target_compile_options(distributed_mpi_tool PRIVATE -Wall -Wextra -Wpedantic)
  endif()
  foreach(check IN ITEMS reshard failures)
    ckpt_add_command_test(distributed.mpi_${check}
      COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/distributed/check_mpi_${check}.sh ${MPIEXEC_EXECUTABLE}
              $<TARGET_FILE:distributed_mpi_tool> ${CMAKE_CURRENT_BINARY_DIR}/mpi_${check}
      LABELS mpi slow no-asan
      TIMEOUT 240)
    if(TEST distributed.mpi_${check})
      set_tests_properties(distributed.mpi_${check} PROPERTIES ENVIRONMENT "${ckpt_mpi_environment}")
    endif()
  endforeach()
endif()

# The MPI demo's resume across world sizes (examples/train_mlp_mpi).
if(TARGET train_mlp_mpi AND MPIEXEC_EXECUTABLE)
  ckpt_add_command_test(distributed.mpi_demo_resume
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/distributed/check_mpi_resume.sh ${MPIEXEC_EXECUTABLE}
            $<TARGET_FILE:train_mlp_mpi> ${CMAKE_CURRENT_BINARY_DIR}/mpi_demo_resume
    LABELS mpi demo slow no-asan
    TIMEOUT 300)
  if(TEST distributed.mpi_demo_resume)
    set_tests_properties(distributed.mpi_demo_resume PROPERTIES ENVIRONMENT "${ckpt_mpi_environment}")
  endif()
endif()

# The MPI demo's manager killed 50 times (one rank or the whole job, sync and
# async), each kill followed by a resume with 2 to 4 ranks; needs the ckpt tool
# to list what each kill left.
if(TARGET train_mlp_mpi AND TARGET ckpt_cli AND MPIEXEC_EXECUTABLE)
  ckpt_add_command_test(distributed.mpi_manager_kills
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/distributed/check_mpi_manager_kills.sh ${MPIEXEC_EXECUTABLE}
            $<TARGET_FILE:train_mlp_mpi> $<TARGET_FILE:ckpt_cli> ${CMAKE_CURRENT_BINARY_DIR}/mpi_manager_kills
    LABELS mpi demo slow no-asan
    TIMEOUT 900)
  if(TEST distributed.mpi_manager_kills)
    set_tests_properties(distributed.mpi_manager_kills PROPERTIES ENVIRONMENT "${ckpt_mpi_environment}")
  endif()
endif()

# The ckpt tool on checkpoint directories (info, verify, convert, diff).
if(TARGET ckpt_cli)
  ckpt_add_test(distributed_cli_tests SOURCES distributed/cli_test.cpp LABELS distributed cli)
  if(TARGET distributed_cli_tests)
    target_compile_definitions(distributed_cli_tests PRIVATE CKPT_CLI_PATH="$<TARGET_FILE:ckpt_cli>")
    target_include_directories(distributed_cli_tests PRIVATE ${CMAKE_CURRENT_SOURCE_DIR}/cli)
    add_dependencies(distributed_cli_tests ckpt_cli)
  endif()
endif()
