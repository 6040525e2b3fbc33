# `cmake --install`: the CLI and its worker, the kernel runtime (libtessel_runtime.a: no
# LLVM), the JIT API (libtessel.so), headers, target and trace configs, and the CMake
# package (find_package(Tessel): Tessel::runtime, Tessel::jit, Tessel::tessel and
# tessel_add_kernels()).
include(CMakePackageConfigHelpers)
set(TESSEL_CMAKE_DIR ${CMAKE_INSTALL_LIBDIR}/cmake/Tessel)

set_target_properties(tessel_runtime PROPERTIES EXPORT_NAME runtime)
set_target_properties(tessel_jit PROPERTIES EXPORT_NAME jit)
set_target_properties(tessel-worker PROPERTIES EXPORT_NAME worker)
install(TARGETS tessel tessel-worker EXPORT TesselTargets RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
install(TARGETS tessel_runtime tessel_jit EXPORT TesselTargets
        ARCHIVE DESTINATION ${CMAKE_INSTALL_LIBDIR} LIBRARY DESTINATION ${CMAKE_INSTALL_LIBDIR})
install(FILES src/runtime/runtime.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/tessel/runtime)
install(FILES src/jit/load_best.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/tessel/jit)
install(FILES src/support/error.h DESTINATION ${CMAKE_INSTALL_INCLUDEDIR}/tessel/support)
install(DIRECTORY configs/targets configs/traces DESTINATION ${CMAKE_INSTALL_DATADIR}/tessel/configs)

install(EXPORT TesselTargets NAMESPACE Tessel:: DESTINATION ${TESSEL_CMAKE_DIR})
configure_package_config_file(cmake/TesselConfig.cmake.in ${CMAKE_CURRENT_BINARY_DIR}/TesselConfig.cmake
                              INSTALL_DESTINATION ${TESSEL_CMAKE_DIR})
write_basic_package_version_file(${CMAKE_CURRENT_BINARY_DIR}/TesselConfigVersion.cmake
                                 COMPATIBILITY SameMinorVersion)
install(FILES ${CMAKE_CURRENT_BINARY_DIR}/TesselConfig.cmake ${CMAKE_CURRENT_BINARY_DIR}/TesselConfigVersion.cmake
              cmake/TesselKernels.cmake DESTINATION ${TESSEL_CMAKE_DIR})
