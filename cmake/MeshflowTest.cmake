# meshflow_add_test(NAME SOURCES ... [LIBS ...] [LABELS ...] [MPI_RANKS N]): one GoogleTest program, one ctest entry.
function(meshflow_add_test name)
  cmake_parse_arguments(T "" "MPI_RANKS;TIMEOUT" "SOURCES;LIBS;LABELS" ${ARGN})
  add_executable(${name} ${T_SOURCES})
  target_link_libraries(${name} PRIVATE ${T_LIBS} GTest::gtest GTest::gtest_main)
  target_include_directories(${name} PRIVATE ${PROJECT_SOURCE_DIR}/tests)
  if(T_MPI_RANKS)
    add_test(NAME ${name} COMMAND ${MPIEXEC_EXECUTABLE} --allow-run-as-root --oversubscribe
             -np ${T_MPI_RANKS} $<TARGET_FILE:${name}>)
  else()
    add_test(NAME ${name} COMMAND ${name})
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 600)
  endif()
  set_tests_properties(${name} PROPERTIES TIMEOUT ${T_TIMEOUT}
                       ENVIRONMENT "MESHFLOW_SOURCE_DIR=${PROJECT_SOURCE_DIR};OMP_NUM_THREADS=2")
  if(T_LABELS)
    set_tests_properties(${name} PROPERTIES LABELS "${T_LABELS}")
  endif()
endfunction()

# meshflow_add_mpi_test(NAME SOURCES ... [LIBS ...] [LABELS ...] [TIMEOUT S] RANKS N...): one GoogleTest
# program, built as NAME_np<first N>, and one ctest entry NAME_np<N> per rank count, run under mpirun -np N.
# The first entry is meshflow_add_test's (two OpenMP threads per rank); the others run one thread per rank.
# Without MPI each entry still exists and reports itself skipped (exit code 77).
function(meshflow_add_mpi_test name)
  cmake_parse_arguments(T "" "TIMEOUT" "SOURCES;LIBS;LABELS;RANKS" ${ARGN})
  if(NOT T_RANKS)
    message(FATAL_ERROR "meshflow_add_mpi_test(${name}): RANKS is missing")
  endif()
  if(NOT T_TIMEOUT)
    set(T_TIMEOUT 600)
  endif()
  list(GET T_RANKS 0 first)
  foreach(ranks ${T_RANKS})
    set(test ${name}_np${ranks})
    if(NOT MESHFLOW_HAVE_MPI)
      add_test(NAME ${test}
               COMMAND sh -c "echo 'skipped: Meshflow was built without MPI (MESHFLOW_HAVE_MPI is off)'; exit 77")
      set_tests_properties(${test} PROPERTIES SKIP_RETURN_CODE 77 LABELS "${T_LABELS}")
    elseif(ranks EQUAL first)
      meshflow_add_test(${test} SOURCES ${T_SOURCES} LIBS ${T_LIBS} MPI_RANKS ${ranks} LABELS "${T_LABELS}"
                        TIMEOUT ${T_TIMEOUT})
    else()
      add_test(NAME ${test} COMMAND ${MPIEXEC_EXECUTABLE} --allow-run-as-root --oversubscribe
               -np ${ranks} $<TARGET_FILE:${name}_np${first}>)
      set_tests_properties(${test} PROPERTIES TIMEOUT ${T_TIMEOUT} LABELS "${T_LABELS}"
                           ENVIRONMENT "MESHFLOW_SOURCE_DIR=${PROJECT_SOURCE_DIR};OMP_NUM_THREADS=1")
    endif()
  endforeach()
endfunction()
