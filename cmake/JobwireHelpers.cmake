# jobwire_cc_library / jobwire_cc_test: Abseil-style helpers, smaller.
#
#   jobwire_cc_library(NAME clock SRCS clock.cc HDRS clock.h DEPS absl::time)
# defines target jobwire_clock with alias jobwire::clock. Without SRCS the
# library is header-only (INTERFACE). Includes are rooted at the repository,
# so code includes "server/common/clock.h".
#
#   jobwire_cc_test(NAME clock_test SRCS clock_test.cc DEPS jobwire::clock)
# builds a GoogleTest binary (with gtest_main) and registers it with CTest;
# nothing when JOBWIRE_BUILD_TESTS is OFF.
#
#   jobwire_cc_fuzz(NAME filter_fuzz SRCS filter_fuzz.cc DEPS jobwire::filter)
# builds a libFuzzer target (LLVMFuzzerTestOneInput) and registers the CTest
# test filter_fuzz (label `fuzz`), which runs it for JOBWIRE_FUZZ_SECONDS
# over its committed seed corpus tests/fuzz/corpus/filter_fuzz/ (read only:
# new inputs go to the build tree); nothing unless JOBWIRE_FUZZ is ON.

set(JOBWIRE_WARNINGS -Wall -Wextra -Wno-unused-parameter -Wno-missing-field-initializers)
# Clang reads the lock annotations (ABSL_GUARDED_BY, ABSL_EXCLUSIVE_LOCKS_REQUIRED, ...);
# a broken one fails the build in every clang preset, with or without JOBWIRE_WERROR.
if(CMAKE_CXX_COMPILER_ID MATCHES "Clang")
  list(APPEND JOBWIRE_WARNINGS -Wthread-safety -Werror=thread-safety)
endif()

function(_jobwire_warnings target)
  target_compile_options(${target} PRIVATE ${JOBWIRE_WARNINGS})
  if(JOBWIRE_WERROR)
    target_compile_options(${target} PRIVATE -Werror)
  endif()
endfunction()

# Executables of the tsan preset carry the Abseil lock annotations
# (tools/tsan/absl_sync_annotations.cc).
function(_jobwire_tsan target)
  if(JOBWIRE_TSAN)
    target_link_libraries(${target} PRIVATE jobwire_tsan_annotations)
  endif()
endfunction()

function(jobwire_cc_library)
  cmake_parse_arguments(JW "" "NAME" "SRCS;HDRS;DEPS" ${ARGN})
  set(target jobwire_${JW_NAME})
  if(JW_SRCS)
    add_library(${target} STATIC ${JW_SRCS} ${JW_HDRS})
    target_include_directories(${target} PUBLIC $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>)
    target_link_libraries(${target} PUBLIC ${JW_DEPS})
    _jobwire_warnings(${target})
  else()
    add_library(${target} INTERFACE)
    target_include_directories(${target} INTERFACE $<BUILD_INTERFACE:${PROJECT_SOURCE_DIR}>)
    target_link_libraries(${target} INTERFACE ${JW_DEPS})
  endif()
  add_library(jobwire::${JW_NAME} ALIAS ${target})
endfunction()

function(jobwire_cc_binary)
  cmake_parse_arguments(JW "" "NAME" "SRCS;DEPS" ${ARGN})
  add_executable(${JW_NAME} ${JW_SRCS})
  target_include_directories(${JW_NAME} PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(${JW_NAME} PRIVATE ${JW_DEPS})
  _jobwire_warnings(${JW_NAME})
  _jobwire_tsan(${JW_NAME})
endfunction()

function(jobwire_cc_test)
  if(NOT JOBWIRE_BUILD_TESTS)
    return()
  endif()
  # LABELS: the CTest labels (default "unit").
  cmake_parse_arguments(JW "" "NAME" "SRCS;DEPS;LABELS" ${ARGN})
  if(NOT JW_LABELS)
    set(JW_LABELS unit)
  endif()
  add_executable(${JW_NAME} ${JW_SRCS})
  target_include_directories(${JW_NAME} PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(${JW_NAME} PRIVATE ${JW_DEPS} GTest::gtest GTest::gmock GTest::gtest_main)
  _jobwire_warnings(${JW_NAME})
  _jobwire_tsan(${JW_NAME})
  add_test(NAME ${JW_NAME} COMMAND ${JW_NAME})
  set_tests_properties(${JW_NAME} PROPERTIES TIMEOUT 300 LABELS "${JW_LABELS}")
endfunction()

function(jobwire_cc_fuzz)
  if(NOT JOBWIRE_FUZZ)
    return()
  endif()
  cmake_parse_arguments(JW "" "NAME" "SRCS;DEPS" ${ARGN})
  add_executable(${JW_NAME} ${JW_SRCS})
  target_include_directories(${JW_NAME} PRIVATE ${PROJECT_SOURCE_DIR})
  target_link_libraries(${JW_NAME} PRIVATE ${JW_DEPS})
  target_link_options(${JW_NAME} PRIVATE -fsanitize=fuzzer)
  _jobwire_warnings(${JW_NAME})
  add_dependencies(jobwire_fuzz_targets ${JW_NAME})
  add_test(NAME ${JW_NAME}
    COMMAND ${CMAKE_COMMAND} -DFUZZER=$<TARGET_FILE:${JW_NAME}>
      -DCORPUS=${PROJECT_SOURCE_DIR}/tests/fuzz/corpus/${JW_NAME}
      -DWORK=${CMAKE_BINARY_DIR}/fuzz/${JW_NAME} -DSECONDS=${JOBWIRE_FUZZ_SECONDS}
      -P ${PROJECT_SOURCE_DIR}/cmake/run_fuzz.cmake)
  math(EXPR timeout "${JOBWIRE_FUZZ_SECONDS} + 120")
  set_tests_properties(${JW_NAME} PROPERTIES TIMEOUT ${timeout} LABELS fuzz)
endfunction()
