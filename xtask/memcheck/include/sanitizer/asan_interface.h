/*
 * Stand-in for the compiler's <sanitizer/asan_interface.h>, used only by `cargo xtask memcheck`
 * (xtask/src/memcheck.rs), which builds the vendored Luau with -DLUAU_ENABLE_ASAN and this
 * directory first on the include path.
 *
 * Why: Luau hands out objects up to 1 KiB from pages of its own (VM/src/lmem.cpp); memcheck only
 * sees the malloc'd page, so a read or write of a freed or never-allocated block inside a page is
 * invisible to it. lmem.cpp already marks blocks for AddressSanitizer when it is enabled; here
 * those marks become memcheck client requests instead, so memcheck reports such accesses as
 * invalid reads and writes.
 *
 * Unpoisoning marks the block DEFINED, not UNDEFINED: Luau keeps its free-list link inside a free
 * block and reads it back right after unpoisoning, which AddressSanitizer (shadowing addressability
 * only) allows but memcheck would report as an uninitialised value if the bytes lost their
 * definedness. Outside valgrind the requests are a few no-op instructions.
 */
#pragma once

#include <valgrind/memcheck.h>

#define __asan_poison_memory_region(addr, size) VALGRIND_MAKE_MEM_NOACCESS((addr), (size))
#define __asan_unpoison_memory_region(addr, size) VALGRIND_MAKE_MEM_DEFINED((addr), (size))
