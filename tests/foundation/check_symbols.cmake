# Fails unless `nm -C` of OBJECT shows SYMBOL as EXPECT says (present or
# absent): what a translation unit compiled.
#   cmake -DNM=nm -DOBJECT=file.o -DSYMBOL=text -DEXPECT=absent -P check_symbols.cmake
execute_process(COMMAND ${NM} -C ${OBJECT} OUTPUT_VARIABLE symbols RESULT_VARIABLE failed)
if(failed)
  message(FATAL_ERROR "${NM} -C ${OBJECT} failed")
endif()
string(FIND "${symbols}" "${SYMBOL}" at)
if(EXPECT STREQUAL "absent" AND NOT at EQUAL -1)
  message(FATAL_ERROR "expected ${OBJECT} to hold no ${SYMBOL}, found it")
elseif(EXPECT STREQUAL "present" AND at EQUAL -1)
  message(FATAL_ERROR "expected ${OBJECT} to hold ${SYMBOL}, found none")
endif()
