# The AUTO|ON|OFF options: AUTO uses a dependency when it is found, ON insists on it. Serving uses
# BEAST and GRPC; the tuner and interpretability EIGEN (Bayesian optimization, LIME, kernel SHAP),
# PNG (heatmaps) and ASIO (the distributed oracle); ONNX export libonnx-dev's protobuf schema.
set(_mf_choices AUTO ON OFF)
foreach(opt CUDA MPI NCCL CUDNN DNNL YAMLCPP BEAST GRPC EIGEN PNG ASIO ONNX)
  set(MESHFLOW_WITH_${opt} AUTO CACHE STRING "Build with ${opt}: AUTO, ON or OFF")
  set_property(CACHE MESHFLOW_WITH_${opt} PROPERTY STRINGS ${_mf_choices})
  if(NOT MESHFLOW_WITH_${opt} IN_LIST _mf_choices)
    message(FATAL_ERROR "MESHFLOW_WITH_${opt}=${MESHFLOW_WITH_${opt}}: expected AUTO, ON or OFF")
  endif()
endforeach()

# meshflow_resolve(NAME FOUND WHAT): sets MESHFLOW_HAVE_NAME, failing when ON was asked and FOUND is false.
function(meshflow_resolve name found what)
  if(MESHFLOW_WITH_${name} STREQUAL "OFF")
    set(MESHFLOW_HAVE_${name} OFF PARENT_SCOPE)
    set(MESHFLOW_SUMMARY_${name} "off (MESHFLOW_WITH_${name}=OFF)" PARENT_SCOPE)
  elseif(found)
    set(MESHFLOW_HAVE_${name} ON PARENT_SCOPE)
    set(MESHFLOW_SUMMARY_${name} "on (${what})" PARENT_SCOPE)
  elseif(MESHFLOW_WITH_${name} STREQUAL "ON")
    message(FATAL_ERROR "MESHFLOW_WITH_${name}=ON but ${name} was not found (${what}). "
                        "Install it (scripts/setup.sh) or configure with -DMESHFLOW_WITH_${name}=AUTO.")
  else()
    set(MESHFLOW_HAVE_${name} OFF PARENT_SCOPE)
    set(MESHFLOW_SUMMARY_${name} "off (not found: ${what})" PARENT_SCOPE)
  endif()
endfunction()

# Note [Fuzz builds]: MESHFLOW_BUILD_FUZZERS=ON makes a build folder for the libFuzzer targets
# (tests/fuzz). Some harnesses link whole Meshflow libraries, so every target in that folder is
# compiled with coverage for libFuzzer, ASan and UBSan (UB stops the run, so libFuzzer keeps the
# input); keep it apart from the main build.
option(MESHFLOW_BUILD_FUZZERS "Build the libFuzzer targets (needs clang; instruments the whole build)" OFF)
if(MESHFLOW_BUILD_FUZZERS)
  if(NOT CMAKE_CXX_COMPILER_ID MATCHES "Clang")
    message(FATAL_ERROR "MESHFLOW_BUILD_FUZZERS needs clang: configure a separate build with "
                        "-DCMAKE_CXX_COMPILER=clang++ -DCMAKE_C_COMPILER=clang")
  endif()
  add_compile_options("$<$<COMPILE_LANGUAGE:C,CXX>:-fsanitize=fuzzer-no-link,address,undefined>"
                      "$<$<COMPILE_LANGUAGE:C,CXX>:-fno-sanitize-recover=undefined;-fno-omit-frame-pointer>")
  add_link_options(-fsanitize=address,undefined)
endif()

