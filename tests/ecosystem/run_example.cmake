# Runs an example's commands in order in a fresh WORK_DIR and checks what they print.
#
#   cmake -DWORK_DIR=... -DRUN1="subdir;program;args..." [-DRUN2=...] ... [-DEXPECT2=regex]
#         [-DSAME_LAST_LINE="1;3"] -P run_example.cmake
#
# RUN<i> runs `program args` inside WORK_DIR/subdir; EXPECT<i> must match its
# output; SAME_LAST_LINE names two runs whose last lines must be identical
# (an interrupted and resumed run against an uninterrupted one).
cmake_minimum_required(VERSION 3.21)

file(REMOVE_RECURSE "${WORK_DIR}")
foreach(run RANGE 1 4)
  if(NOT DEFINED RUN${run})
    continue()
  endif()
  list(POP_FRONT RUN${run} subdir)
  file(MAKE_DIRECTORY "${WORK_DIR}/${subdir}")
  execute_process(COMMAND ${RUN${run}} WORKING_DIRECTORY "${WORK_DIR}/${subdir}"
                  RESULT_VARIABLE result OUTPUT_VARIABLE output ERROR_VARIABLE output)
  message("$ ${RUN${run}}\n${output}")
  if(NOT result EQUAL 0)
    message(FATAL_ERROR "run ${run} failed (${result})")
  endif()
  if(DEFINED EXPECT${run} AND NOT output MATCHES "${EXPECT${run}}")
    message(FATAL_ERROR "run ${run} did not print a line matching '${EXPECT${run}}'")
  endif()
  string(STRIP "${output}" output)
  string(REGEX REPLACE ".*\n" "" last_line${run} "${output}")
endforeach()

if(DEFINED SAME_LAST_LINE)
  list(GET SAME_LAST_LINE 0 first)
  list(GET SAME_LAST_LINE 1 second)
  if(NOT last_line${first} STREQUAL last_line${second})
    message(FATAL_ERROR "runs ${first} and ${second} differ:\n  ${last_line${first}}\n  ${last_line${second}}")
  endif()
endif()
file(REMOVE_RECURSE "${WORK_DIR}")
