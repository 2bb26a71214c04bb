# Runs one libFuzzer target for a bounded time (the CTest test of
# jobwire_cc_fuzz): cmake -DFUZZER=... -DCORPUS=... -DWORK=... -DSECONDS=...
# -P run_fuzz.cmake
#
# CORPUS, the committed seeds, is only read: libFuzzer writes the inputs it
# finds to the first directory it is given, WORK/corpus, emptied first so
# every run starts from the seeds alone. A crash, a sanitizer report, a leak,
# a timeout (-timeout, per input) or memory beyond -rss_limit_mb fails the
# test, with the input saved as WORK/crash-..., WORK/leak-..., etc.
if(NOT IS_DIRECTORY "${CORPUS}")
  message(FATAL_ERROR "no seed corpus at ${CORPUS}")
endif()
file(REMOVE_RECURSE "${WORK}")
file(MAKE_DIRECTORY "${WORK}/corpus")
execute_process(
  COMMAND "${FUZZER}" "${WORK}/corpus" "${CORPUS}"
    -max_total_time=${SECONDS} -rss_limit_mb=2048 -timeout=25
    -artifact_prefix=${WORK}/ -print_final_stats=1
  RESULT_VARIABLE result)
if(NOT result EQUAL 0)
  message(FATAL_ERROR "${FUZZER} failed (${result}); the input is in ${WORK}/")
endif()
