# Format: the safetensors layout, its validation, checksums and atomic writes.
ckpt_add_test(format_tests
  SOURCES format/roundtrip_test.cpp format/hostile_test.cpp format/atomic_write_test.cpp format/python_samples_test.cpp
          format/error_test.cpp format/text_test.cpp format/order_test.cpp
          format/read_range_test.cpp format/blocks_test.cpp format/header_fast_path_test.cpp
          format/hash_dispatch_test.cpp
  LABELS format)

# Verified reads from several threads at once (the ThreadSanitizer tree runs these).
ckpt_add_test(format_thread_tests SOURCES format/blocks_threads_test.cpp LABELS format threads)

# A json + numpy reader written from docs/format.md reads the files the C++
# side writes and compares every value bit-exact. It is told whether this
# build has the zstd codecs, so that a missing compressed sample fails
# instead of going unchecked.
if(TARGET format_tests)
  if(CKPT_WITH_ZSTD)
    set(ckpt_format_zstd with-zstd)
  else()
    set(ckpt_format_zstd without-zstd)
  endif()
  ckpt_add_command_test(format.python_reader
    COMMAND /usr/bin/python3 ${CMAKE_CURRENT_SOURCE_DIR}/format/safetensors_reader.py
            --check-samples $<TARGET_FILE:format_tests> ${ckpt_format_zstd}
    LABELS format
    TIMEOUT 120)
endif()
