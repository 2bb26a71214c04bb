# `cmake --install`: jobwired and jobwire (with JOBWIRE_BUILD_SERVER), their
# shell completions when the CLI can write them, the systemd unit
# (deploy/jobwired.service into lib/systemd/system, its ExecStart pointed at
# the installed jobwired), and the C++ SDK: headers
# under include/jobwire/ (included as "clients/cpp/client.h" and
# "jobwire/v1/job.pb.h", as in this tree), static libraries, and the CMake
# package jobwire (lib/cmake/jobwire/jobwireConfig.cmake), so a project
# does:
#
#   find_package(jobwire 0.1 CONFIG REQUIRED)   # CMAKE_PREFIX_PATH=<prefix>
#   target_link_libraries(app PRIVATE jobwire::sdk)
#
# tests/install/consumer is such a project (tools/test builds it against an
# install and runs it against the installed jobwired).
include(GNUInstallDirs)
include(CMakePackageConfigHelpers)

set(_jw_include ${CMAKE_INSTALL_INCLUDEDIR}/jobwire)
set(_jw_cmake ${CMAKE_INSTALL_LIBDIR}/cmake/jobwire)

set(_jw_sdk_targets jobwire_proto jobwire_sdk_default_address jobwire_sdk_webhook
    jobwire_sdk)
foreach(t ${_jw_sdk_targets})
  string(REGEX REPLACE "^jobwire_" "" name ${t})
  set_target_properties(${t} PROPERTIES EXPORT_NAME ${name})
  target_include_directories(${t} INTERFACE $<INSTALL_INTERFACE:${_jw_include}>)
endforeach()
install(TARGETS ${_jw_sdk_targets} EXPORT jobwireTargets
  ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES
  ${PROJECT_SOURCE_DIR}/clients/cpp/client.h
  ${PROJECT_SOURCE_DIR}/clients/cpp/progress.h
  ${PROJECT_SOURCE_DIR}/clients/cpp/worker.h
  ${PROJECT_SOURCE_DIR}/clients/cpp/webhook.h
  ${PROJECT_SOURCE_DIR}/clients/cpp/default_address.h
  ${PROJECT_BINARY_DIR}/clients/cpp/include/clients/cpp/version.h
  DESTINATION ${_jw_include}/clients/cpp)
# The generated messages and stubs (jobwire/v1, google/rpc, google/api,
# grpc/health/v1), beside the SDK's headers.
install(DIRECTORY ${PROJECT_BINARY_DIR}/proto/gen/ DESTINATION ${_jw_include}
  FILES_MATCHING PATTERN "*.h")
install(EXPORT jobwireTargets NAMESPACE jobwire:: DESTINATION ${_jw_cmake})
configure_package_config_file(${PROJECT_SOURCE_DIR}/cmake/jobwireConfig.cmake.in
  ${PROJECT_BINARY_DIR}/jobwireConfig.cmake INSTALL_DESTINATION ${_jw_cmake})
# 0.x: a minor version may break the API, so 0.1 accepts 0.1.* only.
write_basic_package_version_file(${PROJECT_BINARY_DIR}/jobwireConfigVersion.cmake
  VERSION ${PROJECT_VERSION} COMPATIBILITY SameMinorVersion)
install(FILES ${PROJECT_BINARY_DIR}/jobwireConfig.cmake
  ${PROJECT_BINARY_DIR}/jobwireConfigVersion.cmake DESTINATION ${_jw_cmake})
install(FILES ${PROJECT_SOURCE_DIR}/LICENSE
  DESTINATION ${CMAKE_INSTALL_DATADIR}/doc/jobwire)

if(NOT JOBWIRE_BUILD_SERVER)
  return()
endif()

install(TARGETS jobwired jobwire RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})

# Shell completions, written by the installed CLI itself
# (`jobwire completion bash|zsh|fish`) when it has that command; skipped
# with a note when it does not.
string(CONFIGURE [[
  set(_jw_bin "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}/@CMAKE_INSTALL_BINDIR@/jobwire")
  set(_jw_share "$ENV{DESTDIR}${CMAKE_INSTALL_PREFIX}/@CMAKE_INSTALL_DATADIR@")
  foreach(_jw_shell_dest
      "bash|bash-completion/completions/jobwire"
      "zsh|zsh/site-functions/_jobwire"
      "fish|fish/vendor_completions.d/jobwire.fish")
    string(REPLACE "|" ";" _jw_pair "${_jw_shell_dest}")
    list(GET _jw_pair 0 _jw_shell)
    list(GET _jw_pair 1 _jw_dest)
    execute_process(COMMAND "${_jw_bin}" completion ${_jw_shell}
      OUTPUT_VARIABLE _jw_script RESULT_VARIABLE _jw_status ERROR_QUIET)
    if(_jw_status EQUAL 0 AND NOT _jw_script STREQUAL "")
      message(STATUS "Installing: ${_jw_share}/${_jw_dest}")
      file(WRITE "${_jw_share}/${_jw_dest}" "${_jw_script}")
    else()
      message(STATUS "Skipping ${_jw_shell} completion: jobwire has no `completion ${_jw_shell}`")
    endif()
  endforeach()
]] _jw_code @ONLY)
install(CODE "${_jw_code}")

# The systemd unit, its ExecStart naming the jobwired just installed (the
# prefix given to `cmake --install --prefix` counts, so it is rewritten at
# install time). JOBWIRE_SYSTEMD_UNIT_DIR, relative to the prefix unless
# absolute, moves it (e.g. /etc/systemd/system).
set(JOBWIRE_SYSTEMD_UNIT_DIR "lib/systemd/system" CACHE STRING
  "where cmake --install puts jobwired.service (relative: under the prefix)")
string(CONFIGURE [[
  set(_jw_unit_dir "@JOBWIRE_SYSTEMD_UNIT_DIR@")
  if(NOT IS_ABSOLUTE "${_jw_unit_dir}")
    set(_jw_unit_dir "${CMAKE_INSTALL_PREFIX}/${_jw_unit_dir}")
  endif()
  set(_jw_bindir "@CMAKE_INSTALL_BINDIR@")
  if(NOT IS_ABSOLUTE "${_jw_bindir}")
    set(_jw_bindir "${CMAKE_INSTALL_PREFIX}/${_jw_bindir}")
  endif()
  file(READ "@PROJECT_SOURCE_DIR@/deploy/jobwired.service" _jw_unit)
  string(REPLACE "/usr/local/bin/jobwired" "${_jw_bindir}/jobwired" _jw_unit "${_jw_unit}")
  file(WRITE "@PROJECT_BINARY_DIR@/deploy/jobwired.service" "${_jw_unit}")
  # file(INSTALL) honours DESTDIR and lists the file in install_manifest.txt.
  file(INSTALL DESTINATION "${_jw_unit_dir}" TYPE FILE PERMISSIONS
    OWNER_READ OWNER_WRITE GROUP_READ WORLD_READ
    FILES "@PROJECT_BINARY_DIR@/deploy/jobwired.service")
]] _jw_unit_code @ONLY)
install(CODE "${_jw_unit_code}")
