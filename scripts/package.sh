#!/usr/bin/env bash
# Builds the release and writes what an operator installs, with no Swift toolchain needed:
#
#   dist/luamem-VERSION-linux-ARCH.tar.gz   one folder luamem-VERSION/ (bin, lib, include, ...)
#   dist/luamem_VERSION_DEBARCH.deb         the same files under /usr, for `apt install ./…deb`
#
# The Swift runtime is linked statically into the executables and into the shared library
# (libswiftCore and friends are archives in the toolchain; --exclude-libs keeps their symbols
# out of the library's exports), and so is libstdc++. What remains are Debian's own libraries:
# liblua5.3 (the executables only), libsqlite3, libgcc_s and libc. The .deb's Depends comes from
# dpkg-shlibdeps, so it names exactly the packages those libraries come from.
set -euo pipefail
cd "$(dirname "$0")/.."

version=$(sed -n 's/^let version = "\(.*\)"$/\1/p' Package.swift)
[ -n "$version" ] || { echo "package.sh: no version in Package.swift" >&2; exit 1; }
if [ -z "${LUAMEM_COMMIT:-}" ] && git rev-parse --git-dir >/dev/null 2>&1; then
    LUAMEM_COMMIT=$(git rev-parse HEAD)
    git diff --quiet HEAD -- Sources Package.swift Migrations 2>/dev/null || LUAMEM_COMMIT+="-modified"
fi
export LUAMEM_COMMIT="${LUAMEM_COMMIT:-}"
arch=$(uname -m)
debarch=$(dpkg --print-architecture)
multiarch=$(dpkg-architecture -qDEB_HOST_MULTIARCH 2>/dev/null || gcc -print-multiarch)

build=.build-dist
# Executables are linked as position-dependent (-no-pie): the loader then has no relocations to
# apply to their code and data at every start (luamem-cli: 77,000), which is about 2 ms of each
# `luamem` command. Objects are still position-independent; the shared library is unaffected.
# libstdc++ (which the Swift runtime needs) is linked statically too: loading libstdc++.so costs
# every process ~3,000 symbol lookups, about 1 ms; the static copy's symbols stay hidden
# (--exclude-libs). The toolchain's link line asks for -lstdc++; a linker script of that name
# found first makes it the static archive.
mkdir -p "$build/static-c++"
echo "INPUT($(gcc -print-file-name=libstdc++.a))" > "$build/static-c++/libstdc++.so"
flags=(-c release --build-path "$build" --static-swift-stdlib -Xswiftc -static-stdlib
    --disable-local-rpath -Xswiftc -Xclang-linker -Xswiftc -no-pie
    -Xlinker -L"$PWD/$build/static-c++")
echo "package.sh: building luamem $version (${LUAMEM_COMMIT:-no commit}) with the Swift runtime linked statically"
for product in luamem-cli luamem luamem-run luamem-embed; do
    swift build "${flags[@]}" --product "$product" 2>&1 | grep -v "^warning: " | tail -n 1
done
products="$build/release"

# A toolchain path left in a binary would make it fail where there is no toolchain.
toolchain=$(dirname "$(dirname "$(readlink -f "$(command -v swift)")")")
for file in luamem luamem-cli luamem-run libluamem-embed.so; do
    if readelf -d "$products/$file" | grep -E "NEEDED.*(libswift|libFoundation|libstdc)|R(UN)?PATH"; then
        echo "package.sh: $file still needs the toolchain's libraries, libstdc++ or a run path" >&2
        exit 1
    fi
done

tarball="dist/luamem-$version-linux-$arch.tar.gz"
debfile="dist/luamem_${version}_$debarch.deb"
inputs=("$products/luamem" "$products/luamem-cli" "$products/luamem-run"
    "$products/libluamem-embed.so" README.md
    CHANGELOG.md LICENSE Sources/Luamem/include/luamem.h scripts/package.sh)
if [ -f "$tarball" ] && [ -f "$debfile" ] && [ -z "$(find "${inputs[@]}" -newer "$tarball")" ] \
    && [ -z "$(find "${inputs[@]}" -newer "$debfile")" ]; then
    for file in "$tarball" "$debfile"; do
        echo "package.sh: $file ($(du -h "$file" | cut -f1), up to date)"
    done
    exit 0
fi

rm -rf dist/stage && mkdir -p dist/stage
stage=$(cd dist/stage && pwd)

# install_tree ROOT LIBDIR PCPREFIX DOCDIR: the files, as they go into the archive (README,
# LICENSE and CHANGELOG at its top: DOCDIR .) or under /usr.
install_tree() {
    local root=$1 libdir=$2 pcprefix=$3 docdir=$4
    install -d "$root/bin" "$root/libexec/luamem" "$root/$libdir/lua/5.3" "$root/$libdir/pkgconfig" "$root/include" \
        "$root/$docdir" "$root/share/bash-completion/completions" \
        "$root/share/zsh/vendor-completions" "$root/share/fish/vendor_completions.d"
    install -m 755 -s "$products/luamem" "$products/luamem-run" "$root/bin/"
    # Every command but `run` (Foundation, ArgumentParser); bin/luamem executes it.
    install -m 755 -s "$products/luamem-cli" "$root/libexec/luamem/"
    install -m 644 "$products/libluamem-embed.so" "$root/$libdir/"
    strip --strip-unneeded "$root/$libdir/libluamem-embed.so"
    # One file, two names: the Lua module (`require "luamem"`, `-l luamem.auto`) and the C API.
    # The dynamic loader sees one library, whichever name a process loads it by first.
    ln -s ../../libluamem-embed.so "$root/$libdir/lua/5.3/luamem.so"
    install -m 644 Sources/Luamem/include/luamem.h "$root/include/"
    install -m 644 README.md CHANGELOG.md "$root/$docdir/"
    "$root/bin/luamem" --generate-completion-script bash > "$root/share/bash-completion/completions/luamem"
    "$root/bin/luamem" --generate-completion-script zsh > "$root/share/zsh/vendor-completions/_luamem"
    "$root/bin/luamem" --generate-completion-script fish > "$root/share/fish/vendor_completions.d/luamem.fish"
    local rpath=""
    # The archive can be unpacked anywhere: its .pc finds itself, and a host linked through it
    # finds the library where it was unpacked.
    if [ "$pcprefix" = relocatable ]; then
        pcprefix='${pcfiledir}/../..'
        rpath=' -Wl,-rpath,${libdir}'
    fi
    cat > "$root/$libdir/pkgconfig/luamem.pc" <<EOF
prefix=$pcprefix
libdir=\${prefix}/$libdir
includedir=\${prefix}/include

Name: luamem
Description: Track where a Lua 5.3 program's memory goes (C API for hosts)
Version: $version
Requires: lua5.3
Cflags: -I\${includedir}
Libs: -L\${libdir} -lluamem-embed$rpath
EOF
}

# The archive.
top="luamem-$version"
install_tree "$stage/$top" lib relocatable .
install -m 644 LICENSE "$stage/$top/"
tar -C "$stage" --owner=0 --group=0 --numeric-owner -czf "$tarball" "$top"

# The .deb: the same files under /usr.
deb="$stage/deb"
install_tree "$deb/usr" "lib/$multiarch" /usr share/doc/luamem
install -m 644 LICENSE "$deb/usr/share/doc/luamem/copyright"
mkdir -p "$deb/DEBIAN" "$stage/shlibs/debian"
echo "Source: luamem" > "$stage/shlibs/debian/control"
depends=$(cd "$stage/shlibs" && dpkg-shlibdeps -O \
    "$deb/usr/bin/luamem" "$deb/usr/bin/luamem-run" "$deb/usr/libexec/luamem/luamem-cli" \
    "$deb/usr/lib/$multiarch/libluamem-embed.so" \
    2>/dev/null | sed -n 's/^shlibs:Depends=//p')
[ -n "$depends" ] || { echo "package.sh: dpkg-shlibdeps found no dependencies" >&2; exit 1; }
cat > "$deb/DEBIAN/control" <<EOF
Package: luamem
Version: $version
Architecture: $debarch
Maintainer: luamem developers <maintainers@luamem.invalid>
Installed-Size: $(du -sk "$deb/usr" | cut -f1)
Depends: $depends
Recommends: lua5.3
Section: devel
Priority: optional
Description: find the Lua code that grows memory
 luamem tracks every allocation of a Lua 5.3 program by source line, writes snapshots into
 a SQLite file, and answers which lines grew: "luamem run script.lua", then "luamem query".
 Includes the Lua module (require "luamem", lua5.3 -l luamem.auto) and the C API for hosts
 (luamem.h, pkg-config luamem).
EOF
dpkg-deb --root-owner-group -Zxz --build "$deb" "$debfile" >/dev/null

rm -rf "$stage"
for file in "$tarball" "$debfile"; do
    echo "package.sh: $file ($(du -h "$file" | cut -f1))"
done
