# No fused multiply-add in sparcol's numerics (top-level CMakeLists.txt, sparcol_numerics;
# kernels/CMakeLists.txt, --fmad=false; docs/gpu.md, "Determinism and the CPU twins").
#
# Host code: a * b + c in a library built like the others (through sparcol_warnings) gives the
# unfused result even for a CPU with FMA; a control TU with -ffp-contract=fast fuses it.
add_library(sparcol_fp_probe STATIC ${CMAKE_CURRENT_LIST_DIR}/../unit/fp_contract_probe.cpp
                                    ${CMAKE_CURRENT_LIST_DIR}/../unit/fp_contract_control.cpp)
target_link_libraries(sparcol_fp_probe PRIVATE sparcol_device sparcol_warnings)
set_source_files_properties(${CMAKE_CURRENT_LIST_DIR}/../unit/fp_contract_control.cpp PROPERTIES
                            COMPILE_OPTIONS -ffp-contract=fast)
add_executable(sparcol_fp_contract_tests ${CMAKE_CURRENT_LIST_DIR}/../unit/test_fp_contract.cpp)
target_link_libraries(sparcol_fp_contract_tests PRIVATE sparcol_fp_probe GTest::gtest_main sparcol_warnings)
gtest_discover_tests(sparcol_fp_contract_tests PROPERTIES LABELS unit TIMEOUT 60)

# CUDA: the kernels' target carries --fmad=false (a configure-time check of its COMPILE_OPTIONS),
# and a kernel compiled to PTX with exactly those options holds no fma.rn.f32 (a control compiled
# with --fmad=true does). PTX for one virtual architecture: nvcc writes PTX for one at a time.
if(SPARCOL_HAVE_CUDA AND TARGET sparcol_cuda)
  get_target_property(_cuda_opts sparcol_cuda COMPILE_OPTIONS)
  if(NOT "${_cuda_opts}" MATCHES "--fmad=false")
    message(FATAL_ERROR "sparcol_cuda must be compiled with --fmad=false (kernels/CMakeLists.txt); "
                        "its COMPILE_OPTIONS are: ${_cuda_opts}")
  endif()
  add_library(sparcol_fmad_probe OBJECT ${CMAKE_CURRENT_LIST_DIR}/../gpu/fmad_probe.cu)
  set_target_properties(sparcol_fmad_probe PROPERTIES CUDA_PTX_COMPILATION ON CUDA_ARCHITECTURES 80-virtual)
  target_compile_options(sparcol_fmad_probe PRIVATE $<TARGET_PROPERTY:sparcol_cuda,COMPILE_OPTIONS>)
  add_library(sparcol_fmad_control OBJECT ${CMAKE_CURRENT_LIST_DIR}/../gpu/fmad_probe.cu)
  set_target_properties(sparcol_fmad_control PROPERTIES CUDA_PTX_COMPILATION ON CUDA_ARCHITECTURES 80-virtual)
  target_compile_options(sparcol_fmad_control PRIVATE --fmad=true)
  # Built with the tests (ALL), checked by ctest.
  add_custom_target(sparcol_fmad_ptx ALL DEPENDS sparcol_fmad_probe sparcol_fmad_control)
  add_test(NAME numerics_kernels_no_fma
           COMMAND ${CMAKE_COMMAND} -DPTX=$<TARGET_OBJECTS:sparcol_fmad_probe> -DWANT_FMA=OFF
                   -P ${CMAKE_CURRENT_LIST_DIR}/../gpu/check_ptx_fma.cmake)
  add_test(NAME numerics_kernels_fma_control
           COMMAND ${CMAKE_COMMAND} -DPTX=$<TARGET_OBJECTS:sparcol_fmad_control> -DWANT_FMA=ON
                   -P ${CMAKE_CURRENT_LIST_DIR}/../gpu/check_ptx_fma.cmake)
  set_tests_properties(numerics_kernels_no_fma numerics_kernels_fma_control PROPERTIES LABELS "unit;gpu" TIMEOUT 60)
endif()
