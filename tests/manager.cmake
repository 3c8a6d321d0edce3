# Manager: save policies, retention, naming, the directory lock, preemption,
# async saves, and crash-consistency of saves killed at random moments.
ckpt_add_test(manager_tests
  SOURCES
    manager/naming_test.cpp
    manager/retention_test.cpp
    manager/schedule_test.cpp
    manager/lock_test.cpp
    manager/preemption_test.cpp
    manager/background_test.cpp
    manager/manager_test.cpp
  LABELS manager threads)

# A child process saving in a loop is SIGKILLed at random moments; every
# restart must restore the newest committed step.
ckpt_add_test(manager_crash_tests SOURCES manager/crash_test.cpp LABELS manager crash slow)

# The demo's bit-exact resume: one run, a split run and runs killed at random
# moments print the same weight hash.
if(TARGET train_mlp)
  ckpt_add_command_test(manager.train_mlp_resume_is_bit_exact
    COMMAND bash ${CMAKE_CURRENT_SOURCE_DIR}/manager/check_resume.sh $<TARGET_FILE:train_mlp>
            ${CMAKE_CURRENT_BINARY_DIR}/train_mlp_resume
    LABELS manager demo slow
    TIMEOUT 120)
endif()
