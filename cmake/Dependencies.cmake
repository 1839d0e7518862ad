# The libraries besides LibTorch: from the system (Debian's packages, or any find_package()
# config), or, with RNNKIT_USE_VENDORED, from third_party/ as scripts/vendor_deps.sh fills it on a
# development machine, for a GPU machine that has LibTorch (inside CUDA PyTorch) but not these.
# Either way the targets have the same names: fmt::fmt, cxxopts::cxxopts,
# tomlplusplus::tomlplusplus, nlohmann_json::nlohmann_json, GTest::gtest, GTest::gtest_main.
option(RNNKIT_USE_VENDORED "Use the copies in third_party/ (scripts/vendor_deps.sh) of fmt, cxxopts, toml++, nlohmann-json and GoogleTest" OFF)

find_package(ZLIB REQUIRED)  # CRC-32 of checkpoints; zlib's headers are on nearly every machine

if(RNNKIT_USE_VENDORED)
  set(_tp ${PROJECT_SOURCE_DIR}/third_party)
  if(NOT EXISTS ${_tp}/include/cxxopts.hpp)
    message(FATAL_ERROR "RNNKIT_USE_VENDORED: ${_tp} is empty; run scripts/vendor_deps.sh on a machine with "
                        "Debian's packages and carry third_party/ along")
  endif()
  # Header-only, all four (fmt in its header-only mode).
  foreach(lib fmt cxxopts tomlplusplus nlohmann_json)
    add_library(rnnkit_vendored_${lib} INTERFACE)
    target_include_directories(rnnkit_vendored_${lib} SYSTEM INTERFACE ${_tp}/include)
    add_library(${lib}::${lib} ALIAS rnnkit_vendored_${lib})
  endforeach()
  target_compile_definitions(rnnkit_vendored_fmt INTERFACE FMT_HEADER_ONLY=1)
  if(RNNKIT_BUILD_TESTS)
    set(INSTALL_GTEST OFF CACHE BOOL "" FORCE)
    set(BUILD_GMOCK OFF CACHE BOOL "" FORCE)
    add_subdirectory(${_tp}/googletest ${CMAKE_BINARY_DIR}/third_party/googletest EXCLUDE_FROM_ALL)
    if(NOT TARGET GTest::gtest)  # GoogleTest >= 1.11 defines them itself
      add_library(GTest::gtest ALIAS gtest)
      add_library(GTest::gtest_main ALIAS gtest_main)
    endif()
  endif()
  message(STATUS "rnnkit: fmt, cxxopts, toml++, nlohmann-json and GoogleTest from ${_tp}")
else()
  find_package(fmt REQUIRED)
  find_package(cxxopts REQUIRED)
  find_package(tomlplusplus REQUIRED)
  find_package(nlohmann_json REQUIRED)
  if(RNNKIT_BUILD_TESTS)
    find_package(GTest REQUIRED)
  endif()
endif()
