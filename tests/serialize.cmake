# Describing state, Checkpoint<State>, strict and non-strict loads, optimizers.
ckpt_add_test(serialize_tests
  SOURCES
    serialize/names_test.cpp
    serialize/round_trip_test.cpp
    serialize/metadata_test.cpp
    serialize/load_report_test.cpp
    serialize/optim_test.cpp
  LABELS serialize)

# The streaming save runs on the worker threads: its own executable carries
# the "threads" label, so that the ThreadSanitizer tree runs it.
ckpt_add_test(serialize_streaming_tests SOURCES serialize/streaming_save_test.cpp LABELS serialize threads)

# The static_assert messages are part of the interface: each case must fail to
# compile with the message that tells the user what to write instead.
set(serialize_compile_fail_messages
  "ckpt cannot describe this type. Teach it"
  "needs the member itself \\(an lvalue\\)"
  "both a member describe\\(\\) and a non-member describe\\(\\)"
  "so that T can be loaded")
# They only compile, so the sanitizer trees (no-asan) leave them out.
ckpt_test_selected(selected serialize no-asan)
if(selected)
  set(serialize_compile_fail_case 0)
  foreach(message IN LISTS serialize_compile_fail_messages)
    math(EXPR serialize_compile_fail_case "${serialize_compile_fail_case} + 1")
    set(target serialize_compile_fail_${serialize_compile_fail_case})
    add_executable(${target} EXCLUDE_FROM_ALL serialize/compile_fail.cpp)
    target_link_libraries(${target} PRIVATE ckpt::ckpt)
    target_compile_definitions(${target} PRIVATE CKPT_COMPILE_FAIL_CASE=${serialize_compile_fail_case})
    add_test(NAME serialize.compile_fail.${serialize_compile_fail_case}
             COMMAND ${CMAKE_COMMAND} --build ${PROJECT_BINARY_DIR} --target ${target} --config $<CONFIG>)
    set_tests_properties(serialize.compile_fail.${serialize_compile_fail_case}
                         PROPERTIES LABELS "serialize;no-asan" PASS_REGULAR_EXPRESSION "${message}")
  endforeach()
endif()
