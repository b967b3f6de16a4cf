#!/bin/sh
# Re-fetch the vendored browser libraries from the npm registry: each published tarball (`npm pack`), then only
# the files the chat page loads plus their licences. Versions are pinned here and in VENDOR.md; to upgrade,
# change a version, run this script, check the page (tests/web) and update VENDOR.md.
# Usage: sh src/parley/web/static/vendor/refresh.sh   (needs npm and the registry; replaces only the vendored files)
set -eu

MARKDOWN_IT=15.0.3
TEXMATH=1.0.0
DOMPURIFY=3.4.18
HIGHLIGHT=11.12.0
KATEX=0.19.1
AXE=4.14.1
# What the markdown-it browser bundle contains besides markdown-it itself (its dependencies at the versions
# npm resolves for it; their licences travel with it).
ENTITIES=8.1.0
LINKIFY=6.1.0
MDURL=2.1.0
UC_MICRO=3.0.0
PUNYCODE=2.3.1

vendor=$(cd "$(dirname "$0")" && pwd)
tests_vendor=$(cd "$vendor/../../../../../tests/web" && pwd)/vendor
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# unpack NAME@VERSION: the package's files in $tmp/NAME
unpack() {
    name=${1%@*}
    tarball=$(cd "$tmp" && npm pack --silent "$1" | tail -n 1)
    mkdir -p "$tmp/$name"
    tar -xzf "$tmp/$tarball" -C "$tmp/$name" --strip-components=1
}

# take SRC DEST: copy one file, without a trailing source-map reference (the maps are not vendored)
take() {
    mkdir -p "$(dirname "$2")"
    sed '/^\/\/# sourceMappingURL=/d' "$1" > "$2"
}

rm -rf "$vendor/markdown-it" "$vendor/markdown-it-texmath" "$vendor/dompurify" "$vendor/highlight.js" "$vendor/katex"

unpack "markdown-it@$MARKDOWN_IT"
take "$tmp/markdown-it/dist/browser/markdown-it.umd.min.js" "$vendor/markdown-it/markdown-it.min.js"
cp "$tmp/markdown-it/LICENSE" "$vendor/markdown-it/LICENSE"
for dep in "entities@$ENTITIES" "linkify-it@$LINKIFY" "mdurl@$MDURL" "uc.micro@$UC_MICRO" "punycode.js@$PUNYCODE"; do
    unpack "$dep"
    name=${dep%@*}
    licence=$(ls "$tmp/$name" | grep -i '^licen[cs]e' | head -n 1)
    cp "$tmp/$name/$licence" "$vendor/markdown-it/LICENSE.$name"
done

unpack "markdown-it-texmath@$TEXMATH"
# No minified build is published; the source is 14 kB.
take "$tmp/markdown-it-texmath/texmath.js" "$vendor/markdown-it-texmath/texmath.js"
cp "$tmp/markdown-it-texmath/license.txt" "$vendor/markdown-it-texmath/LICENSE"

unpack "dompurify@$DOMPURIFY"
take "$tmp/dompurify/dist/purify.min.js" "$vendor/dompurify/purify.min.js"
cp "$tmp/dompurify/LICENSE" "$vendor/dompurify/LICENSE"

unpack "@highlightjs/cdn-assets@$HIGHLIGHT"
h="$tmp/@highlightjs/cdn-assets"
take "$h/highlight.min.js" "$vendor/highlight.js/highlight.min.js"
take "$h/styles/github.min.css" "$vendor/highlight.js/github.min.css"
take "$h/styles/github-dark.min.css" "$vendor/highlight.js/github-dark.min.css"
cp "$h/LICENSE" "$vendor/highlight.js/LICENSE"

unpack "katex@$KATEX"
take "$tmp/katex/dist/katex.min.js" "$vendor/katex/katex.min.js"
take "$tmp/katex/dist/katex.min.css" "$vendor/katex/katex.min.css"
mkdir -p "$vendor/katex/fonts"
cp "$tmp/katex/dist/fonts/"*.woff2 "$vendor/katex/fonts/"
cp "$tmp/katex/LICENSE" "$vendor/katex/LICENSE"

unpack "axe-core@$AXE"
mkdir -p "$tests_vendor"
cp "$tmp/axe-core/axe.min.js" "$tests_vendor/axe.min.js"
cp "$tmp/axe-core/LICENSE" "$tests_vendor/LICENSE.axe-core"

echo "vendored into $vendor and $tests_vendor"
