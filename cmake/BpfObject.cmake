# bpf_object(NAME SOURCE [HEADERS h...])
#
# Compiles SOURCE (a .bpf.c file) with clang -target bpf, keeping BTF for CO-RE,
# generates a libbpf skeleton NAME.skel.h (struct NAME_bpf, functions
# NAME_bpf__open/load/destroy) with bpftool, and defines the
# INTERFACE target NAME_skel that puts the skeleton on the include path and
# links libbpf. HEADERS are extra dependencies (the ABI header).
#
# vmlinux.h is generated once per build tree from the running kernel's BTF.

find_program(BPF_CLANG NAMES clang clang-14 REQUIRED)
find_program(BPFTOOL NAMES bpftool PATHS /usr/sbin /sbin REQUIRED)

if(CMAKE_SYSTEM_PROCESSOR MATCHES "x86_64|AMD64")
  set(BPF_TARGET_ARCH x86)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "aarch64|arm64")
  set(BPF_TARGET_ARCH arm64)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "^arm")
  set(BPF_TARGET_ARCH arm)
elseif(CMAKE_SYSTEM_PROCESSOR MATCHES "mips")
  set(BPF_TARGET_ARCH mips)
else()
  set(BPF_TARGET_ARCH ${CMAKE_SYSTEM_PROCESSOR})
endif()

set(BPF_VMLINUX_BTF "/sys/kernel/btf/vmlinux" CACHE FILEPATH "BTF source for vmlinux.h")
set(BPF_GEN_DIR ${CMAKE_BINARY_DIR}/bpf)
file(MAKE_DIRECTORY ${BPF_GEN_DIR})

add_custom_command(
  OUTPUT ${BPF_GEN_DIR}/vmlinux.h
  COMMAND ${BPFTOOL} btf dump file ${BPF_VMLINUX_BTF} format c > ${BPF_GEN_DIR}/vmlinux.h.tmp
  COMMAND ${CMAKE_COMMAND} -E rename ${BPF_GEN_DIR}/vmlinux.h.tmp ${BPF_GEN_DIR}/vmlinux.h
  COMMENT "Generating vmlinux.h from ${BPF_VMLINUX_BTF}"
  VERBATIM)
add_custom_target(bpf_vmlinux_h DEPENDS ${BPF_GEN_DIR}/vmlinux.h)

function(bpf_object name src)
  cmake_parse_arguments(ARG "" "" "HEADERS" ${ARGN})
  get_filename_component(src_abs ${src} ABSOLUTE)
  get_filename_component(src_dir ${src_abs} DIRECTORY)
  set(obj ${BPF_GEN_DIR}/${name}.bpf.o)
  set(skel ${BPF_GEN_DIR}/${name}.skel.h)

  add_custom_command(
    OUTPUT ${obj}
    COMMAND ${BPF_CLANG} -g -O2 -target bpf -D__TARGET_ARCH_${BPF_TARGET_ARCH}
            -Wall -Werror -Wno-unused-function
            -I${BPF_GEN_DIR} -I${src_dir}
            -c ${src_abs} -o ${obj}
    DEPENDS ${src_abs} ${ARG_HEADERS}
    COMMENT "BPF ${name}: compiling ${src}"
    VERBATIM)
  add_custom_command(
    OUTPUT ${skel}
    COMMAND ${BPFTOOL} gen skeleton ${obj} name ${name}_bpf > ${skel}.tmp
    COMMAND ${CMAKE_COMMAND} -E rename ${skel}.tmp ${skel}
    DEPENDS ${obj}
    COMMENT "BPF ${name}: generating skeleton"
    VERBATIM)
  add_custom_target(${name}_skel_gen DEPENDS ${skel})
  # vmlinux.h through its one target, not as a file dependency: every target that lists a custom
  # command's output gets its own copy of the rule, and two skeletons built in parallel would
  # both write vmlinux.h.
  add_dependencies(${name}_skel_gen bpf_vmlinux_h)

  add_library(${name}_skel INTERFACE)
  add_dependencies(${name}_skel ${name}_skel_gen)
  target_include_directories(${name}_skel INTERFACE ${BPF_GEN_DIR} ${src_dir})
  target_link_libraries(${name}_skel INTERFACE PkgConfig::LIBBPF)
endfunction()
