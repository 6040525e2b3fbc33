# tessel_add_kernels(<target> WORKLOADS <spec|file|suite>... [DB <path>] [TARGET_ARCH <t>]
#                    [NAME <library>] [THREADS <n>] [REQUIRE_TUNED] [COMPATIBLE])
#
# Runs `tessel compile` at build time: the best record per workload in the tuning
# database DB for TARGET_ARCH (default host) becomes a kernel library (lib<NAME>.a and
# <NAME>.h, NAME defaulting to <target>_kernels), linked into <target> with
# Tessel::runtime; <target> includes <NAME>.h. The step reruns when the database, the
# workload list, a workload file or the tessel executable changes, and only then.
# Without DB (or with a DB that does not exist yet) kernels get their default schedules,
# with a warning; REQUIRE_TUNED makes that an error.
function(tessel_add_kernels target)
  cmake_parse_arguments(TK "REQUIRE_TUNED;COMPATIBLE" "DB;TARGET_ARCH;NAME;THREADS" "WORKLOADS" ${ARGN})
  if(NOT TARGET ${target})
    message(FATAL_ERROR "tessel_add_kernels: '${target}' is not a target (add_executable/add_library it first)")
  endif()
  if(NOT TK_WORKLOADS)
    message(FATAL_ERROR "tessel_add_kernels(${target}): give WORKLOADS <spec|file|suite>...")
  endif()
  if(TK_UNPARSED_ARGUMENTS)
    message(FATAL_ERROR "tessel_add_kernels(${target}): unknown arguments ${TK_UNPARSED_ARGUMENTS}")
  endif()
  if(NOT TK_NAME)
    set(TK_NAME ${target}_kernels)
  endif()
  if(NOT TK_TARGET_ARCH)
    set(TK_TARGET_ARCH host)
  endif()
  if(NOT TK_THREADS)
    set(TK_THREADS 1)
  endif()
  set(out ${CMAKE_CURRENT_BINARY_DIR}/tessel_${TK_NAME})
  file(MAKE_DIRECTORY ${out})

  # Workload files resolve against the source directory and are dependencies.
  set(args "")
  set(deps "")
  foreach(w IN LISTS TK_WORKLOADS)
    string(REGEX REPLACE "^[A-Za-z_][A-Za-z0-9_]*@" "" bare "${w}")
    string(REGEX MATCH "^[A-Za-z_][A-Za-z0-9_]*@" label "${w}")
    if(NOT IS_ABSOLUTE "${bare}" AND EXISTS "${CMAKE_CURRENT_SOURCE_DIR}/${bare}")
      set(bare "${CMAKE_CURRENT_SOURCE_DIR}/${bare}")
    endif()
    if(EXISTS "${bare}" AND NOT IS_DIRECTORY "${bare}")
      list(APPEND deps "${bare}")
    endif()
    list(APPEND args "${label}${bare}")
  endforeach()
  # The list itself, rewritten only when it changes: a changed list reruns the step.
  string(REPLACE ";" "\n" list_text "${args};${TK_TARGET_ARCH};${TK_THREADS};${TK_REQUIRE_TUNED};${TK_COMPATIBLE}")
  file(CONFIGURE OUTPUT ${out}/workloads.txt CONTENT "${list_text}\n")
  list(APPEND deps ${out}/workloads.txt)

  set(flags --target ${TK_TARGET_ARCH} --threads ${TK_THREADS} --name ${TK_NAME} -o ${out})
  if(TK_REQUIRE_TUNED)
    list(APPEND flags --require-tuned)
  endif()
  if(TK_COMPATIBLE)
    list(APPEND flags --compatible)
  endif()
  if(TK_DB)
    get_filename_component(db "${TK_DB}" ABSOLUTE BASE_DIR ${CMAKE_CURRENT_SOURCE_DIR})
    list(APPEND flags --db ${db})
    if(EXISTS "${db}")
      list(APPEND deps "${db}")
    else()
      message(WARNING "tessel_add_kernels(${target}): no tuning database at ${db} yet: kernels get default "
                      "schedules until it exists and CMake is re-run")
      set(flags --target ${TK_TARGET_ARCH} --threads ${TK_THREADS} --name ${TK_NAME} -o ${out})
      if(TK_REQUIRE_TUNED)
        list(APPEND flags --require-tuned)
      endif()
    endif()
  endif()

  add_custom_command(
    OUTPUT ${out}/lib${TK_NAME}.a ${out}/${TK_NAME}.h ${out}/${TK_NAME}.json
    COMMAND ${CMAKE_COMMAND} -E env TESSEL_DB=${out}/none.db $<TARGET_FILE:Tessel::tessel> compile ${args} ${flags}
    DEPENDS ${deps} Tessel::tessel
    WORKING_DIRECTORY ${out}
    COMMENT "Tessel: kernel library ${TK_NAME} for ${TK_TARGET_ARCH}"
    VERBATIM)
  add_custom_target(${TK_NAME}_tessel_compile DEPENDS ${out}/lib${TK_NAME}.a ${out}/${TK_NAME}.h)
  add_dependencies(${target} ${TK_NAME}_tessel_compile)
  target_include_directories(${target} PRIVATE ${out})
  target_link_libraries(${target} PRIVATE ${out}/lib${TK_NAME}.a Tessel::runtime)
endfunction()
