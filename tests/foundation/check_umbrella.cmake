# <ckpt/ckpt.hpp> must include every public header except the optional
# adapters (which pull in third-party libraries), so that users who include it
# get the whole library.
#
# cmake -DINCLUDE_DIR=<include> -DADAPTERS=ckpt/eigen.hpp,ckpt/npz.hpp,... -P check_umbrella.cmake
cmake_minimum_required(VERSION 3.21)

string(REPLACE "," ";" ADAPTERS "${ADAPTERS}")

file(READ "${INCLUDE_DIR}/ckpt/ckpt.hpp" umbrella)
file(GLOB_RECURSE headers RELATIVE "${INCLUDE_DIR}" "${INCLUDE_DIR}/ckpt/*.hpp")
set(missing "")
foreach(header IN LISTS headers)
  if(header MATCHES "^ckpt/detail/" OR header STREQUAL "ckpt/ckpt.hpp" OR header IN_LIST ADAPTERS)
    continue()
  endif()
  string(FIND "${umbrella}" "#include \"${header}\"" quoted)
  string(FIND "${umbrella}" "#include <${header}>" angled)
  if(quoted EQUAL -1 AND angled EQUAL -1)
    list(APPEND missing "${header}")
  endif()
endforeach()
if(missing)
  list(JOIN missing ", " missing)
  message(FATAL_ERROR "include/ckpt/ckpt.hpp does not include: ${missing}")
endif()
