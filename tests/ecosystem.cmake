# Ecosystem: the vcpkg port, the optional Eigen and libtorch adapters, the examples.
if(NOT DEFINED CKPT_PYTHON3)
  # The interop tests need numpy and torch, which Debian installs for its own python3.
  set(CKPT_PYTHON3 /usr/bin/python3 CACHE FILEPATH "Python 3 with numpy (and torch for the libtorch tests)")
endif()

# Both manifests in vcpkg's canonical form, the overlay port building the
# clone, the registry port written from it, no dependency left to detection.
ckpt_add_command_test(ecosystem.vcpkg_manifests
  COMMAND ${CKPT_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/ecosystem/check_vcpkg_manifests.py ${PROJECT_SOURCE_DIR}
          ${CMAKE_COMMAND} ${CMAKE_CURRENT_BINARY_DIR}/vcpkg_registry_port
  LABELS ecosystem)

# The newcomer's path: each command of the README's ```sh blocks, run as
# written in a fresh copy of the repository, or mapped to the test that covers
# it (see the script).
ckpt_add_command_test(ecosystem.readme_commands
  COMMAND ${CKPT_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/ecosystem/readme_commands.py ${PROJECT_SOURCE_DIR}
          ${CMAKE_CURRENT_BINARY_DIR}/readme_commands ${PROJECT_VERSION}
  LABELS ecosystem foundation package slow no-asan
  TIMEOUT 3600)

# The port's install, for each feature set vcpkg can build (+ joins features).
foreach(features IN ITEMS core zstd compiled+zstd)
  ckpt_add_command_test(ecosystem.install_like_vcpkg.${features}
    COMMAND ${CMAKE_COMMAND} -DSOURCE_DIR=${PROJECT_SOURCE_DIR}
            -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/install_like_vcpkg.${features}
            -DGENERATOR=${CMAKE_GENERATOR} -DCXX_COMPILER=${CMAKE_CXX_COMPILER} -DFEATURES=${features}
            -P ${CMAKE_CURRENT_SOURCE_DIR}/ecosystem/install_like_vcpkg.cmake
    LABELS ecosystem slow no-asan)
endforeach()

if(TARGET ckpt::eigen)
  ckpt_add_test(ecosystem_eigen_test SOURCES ecosystem/eigen_test.cpp LIBRARIES ckpt::eigen LABELS ecosystem)
endif()

if(TARGET ckpt::torch)
  ckpt_add_test(ecosystem_torch_test SOURCES ecosystem/torch_test.cpp LIBRARIES ckpt::torch LABELS torch no-asan)
endif()
if(TARGET ecosystem_torch_test)
  # The C++ side writes a checkpoint and the values it holds; python3-torch must
  # read the same values by name from the raw file.
  ckpt_add_command_test(ecosystem.torch_python_reads_checkpoint
    COMMAND ${CKPT_PYTHON3} ${CMAKE_CURRENT_SOURCE_DIR}/ecosystem/torch_python_check.py
            $<TARGET_FILE:ecosystem_torch_test> ${CMAKE_CURRENT_BINARY_DIR}/torch_python_check
            ${CMAKE_CURRENT_SOURCE_DIR}/format
    LABELS torch no-asan)
endif()

# Every example runs (guarded: sanitizer builds leave examples out). ARGS are
# run_example.cmake's -D options.
function(ckpt_add_example_test name)
  cmake_parse_arguments(arg "" "" "LABELS;ARGS" ${ARGN})
  if(TARGET example_${name})
    ckpt_add_command_test(example.${name}
      COMMAND ${CMAKE_COMMAND} -DWORK_DIR=${CMAKE_CURRENT_BINARY_DIR}/example.${name} ${arg_ARGS}
              -P ${CMAKE_CURRENT_SOURCE_DIR}/ecosystem/run_example.cmake
      LABELS examples ${arg_LABELS})
  endif()
endfunction()
ckpt_add_example_test(minimal ARGS "-DRUN1=.$<SEMICOLON>$<TARGET_FILE:example_minimal>" "-DEXPECT1=restored step 42")
ckpt_add_example_test(eigen_model ARGS "-DRUN1=.$<SEMICOLON>$<TARGET_FILE:example_eigen_model>"
                                       "-DEXPECT1=predictions identical")
ckpt_add_example_test(export_for_python
  ARGS "-DRUN1=.$<SEMICOLON>$<TARGET_FILE:example_export_for_python>"
       "-DRUN2=.$<SEMICOLON>${CKPT_PYTHON3}$<SEMICOLON>${PROJECT_SOURCE_DIR}/examples/load_in_python.py"
       "-DEXPECT2=numpy: same output as C")
# Stopped without saving after the checkpoint of step 100, then resumed: the
# final line must equal that of a run that never stopped.
foreach(example manager_loop torch_train)
  set(program "$<TARGET_FILE:example_${example}>")
  set(labels)
  if(example STREQUAL "torch_train")
    set(labels torch no-asan)
  endif()
  ckpt_add_example_test(${example} LABELS ${labels}
    ARGS "-DRUN1=uninterrupted$<SEMICOLON>${program}"
         "-DRUN2=interrupted$<SEMICOLON>${program}$<SEMICOLON>--stop-at$<SEMICOLON>130"
         "-DRUN3=interrupted$<SEMICOLON>${program}" "-DEXPECT3=resumed at step 100"
         "-DSAME_LAST_LINE=1$<SEMICOLON>3")
endforeach()
