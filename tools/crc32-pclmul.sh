#!/bin/sh
# Builds tools/crc32-pclmul.c into flat position-independent bytes and prints them as hex, for
# src/sys/crc32-code.ts: the function first, its constants after it, nothing to relocate.
set -e
d=$(mktemp -d); trap 'rm -rf "$d"' EXIT
src=$(dirname "$0")/crc32-pclmul.c
gcc -O2 -mpclmul -msse2 -mno-sse3 -fPIC -ffreestanding -fno-stack-protector -fno-asynchronous-unwind-tables -fcf-protection=none -c "$src" -o "$d/c.o"
printf 'SECTIONS { . = 0; .text : { *(.text.stasis_crc32) *(.text*) *(.rodata*) } /DISCARD/ : { *(*) } }\n' > "$d/l.ld"
ld -T "$d/l.ld" -e stasis_crc32 -o "$d/c.elf" "$d/c.o"
[ "$(nm "$d/c.elf" | awk '$3 == "stasis_crc32" { print $1 }')" = 0000000000000000 ] || { echo "stasis_crc32 is not at the start" >&2; exit 1; }
[ -z "$(readelf -r "$d/c.o" | grep -v -e '^$' -e 'There are no relocations' -e 'R_X86_64_PC32' -e 'R_X86_64_PLT32' -e "Relocation section" -e 'Offset' )" ] || { echo "relocations other than PC-relative" >&2; readelf -r "$d/c.o" >&2; exit 1; }
objcopy -O binary -j .text "$d/c.elf" "$d/c.bin"
od -An -v -tx1 "$d/c.bin" | tr -d ' \n'; echo
