# Codecs, chunking, byte shuffle and the thread pool. Labelled "threads" so the
# ThreadSanitizer job runs it.
ckpt_add_test(codecs_tests
  SOURCES
    codecs/shuffle_test.cpp
    codecs/thread_pool_test.cpp
    codecs/registry_test.cpp
    codecs/policy_test.cpp
    codecs/chunked_test.cpp
    codecs/python_decode_test.cpp
  LABELS codecs threads)
