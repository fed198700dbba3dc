# TSP_GIT_DESCRIBE: `git describe --tags --always --dirty` of the source tree when CMake configures it, or
# "not a git checkout" (a source archive). A new commit or checkout re-runs the configure step, so the string
# follows HEAD; uncommitted edits made after configuring are not noticed until then.
set(TSP_GIT_DESCRIBE "not a git checkout")
find_package(Git QUIET)
if(GIT_FOUND)
  execute_process(COMMAND ${GIT_EXECUTABLE} rev-parse --show-toplevel --absolute-git-dir
                  WORKING_DIRECTORY ${PROJECT_SOURCE_DIR} OUTPUT_VARIABLE tsp_git_dirs RESULT_VARIABLE tsp_git_rc
                  OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
  if(tsp_git_rc EQUAL 0)
    string(REPLACE "\n" ";" tsp_git_dirs "${tsp_git_dirs}")
    list(GET tsp_git_dirs 0 tsp_git_top)
    list(GET tsp_git_dirs 1 tsp_git_dir)
    file(REAL_PATH "${tsp_git_top}" tsp_git_top)
    file(REAL_PATH "${PROJECT_SOURCE_DIR}" tsp_src_real)
    # Only this project's own repository (not one the sources happen to be unpacked inside).
    if(tsp_git_top STREQUAL tsp_src_real)
      execute_process(COMMAND ${GIT_EXECUTABLE} describe --tags --always --dirty
                      WORKING_DIRECTORY ${PROJECT_SOURCE_DIR} OUTPUT_VARIABLE tsp_describe
                      RESULT_VARIABLE tsp_describe_rc OUTPUT_STRIP_TRAILING_WHITESPACE ERROR_QUIET)
      if(tsp_describe_rc EQUAL 0 AND tsp_describe)
        set(TSP_GIT_DESCRIBE "${tsp_describe}")
      endif()
      if(EXISTS "${tsp_git_dir}/logs/HEAD")
        set_property(DIRECTORY APPEND PROPERTY CMAKE_CONFIGURE_DEPENDS "${tsp_git_dir}/logs/HEAD")
      endif()
    endif()
  endif()
endif()
