#!/usr/bin/env bash
# Re-fetch the web console's front-end libraries from npm at the pinned versions below and copy
# them into web/titan_web/static/vendor/ (with their licences), then rewrite VENDORED.md
# (versions, licences, sha256). The console never loads anything from a CDN at run time.
#
#   scripts/vendor_js.sh           fetch, copy, rewrite VENDORED.md (review with `git diff`)
#   scripts/vendor_js.sh --check   fetch into a temporary folder only; exit 1 if a vendored file
#                                  differs from what npm serves for the pinned version
#
# To upgrade: change a version in PINS, run the script, run tests/unit/web and tests/browser.
# Needs npm, tar, sha256sum, python3 (to read package.json); nothing else.
set -euo pipefail

cd "$(dirname "$0")/.."
VENDOR=web/titan_web/static/vendor

# package  version  file-in-package  vendored-as  licence (SPDX; htmx-ext-sse's package.json has
# no "license" field, its LICENSE file is 0BSD)
PINS=(
    "htmx.org              2.0.11 dist/htmx.min.js                 htmx.min.js              0BSD"
    "htmx-ext-sse          2.2.4  dist/sse.js                      htmx-ext-sse.js          0BSD"
    "cytoscape             3.35.0 dist/cytoscape.min.js            cytoscape.min.js         MIT"
    "cytoscape-dagre       4.0.1  dist/cytoscape-dagre.js          cytoscape-dagre.js       MIT"
    "cytoscape-dagre       4.0.1  dist/cytoscape-dagre.js.map      cytoscape-dagre.js.map   MIT"
    "dagre                 0.8.5  dist/dagre.min.js                dagre.min.js             MIT"
    "lodash                4.18.1 lodash.min.js                    lodash.min.js            MIT"
    "cytoscape-edgehandles 4.0.1  cytoscape-edgehandles.js         cytoscape-edgehandles.js MIT"
)

MODE=write
case "${1:-}" in
    "") ;;
    --check) MODE=check ;;
    *) echo "usage: $0 [--check]" >&2; exit 2 ;;
esac

for tool in npm tar sha256sum python3; do
    command -v "$tool" >/dev/null || { echo "$0: $tool is required" >&2; exit 2; }
done

TMP=$(mktemp -d)
trap 'rm -rf "$TMP"' EXIT

# Fetch each pinned package once (npm checks the tarball against the registry's integrity).
declare -A UNPACKED INTEGRITY
for pin in "${PINS[@]}"; do
    read -r pkg ver _ <<<"$pin"
    key="$pkg@$ver"
    [ -n "${UNPACKED[$key]:-}" ] && continue
    dir="$TMP/${pkg//\//_}-$ver"
    mkdir -p "$dir"
    echo "npm pack $key" >&2
    (cd "$dir" && npm pack --silent --json "$key" >pack.json)
    tarball=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["filename"])' \
        "$dir/pack.json")
    INTEGRITY[$key]=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))[0]["integrity"])' \
        "$dir/pack.json")
    tar -xzf "$dir/$tarball" -C "$dir"
    UNPACKED[$key]="$dir/package"
done

status=0
if [ "$MODE" = write ]; then
    mkdir -p "$VENDOR/licenses"
fi
ROWS=""
LICENCE_DONE=" "
for pin in "${PINS[@]}"; do
    read -r pkg ver src dest licence <<<"$pin"
    key="$pkg@$ver"
    root="${UNPACKED[$key]}"
    declared=$(python3 -c 'import json,sys; print(json.load(open(sys.argv[1])).get("license", ""))' \
        "$root/package.json")
    if [ -n "$declared" ] && [ "$declared" != "$licence" ]; then
        echo "$0: $key declares licence '$declared', PINS says '$licence'" >&2
        exit 1
    fi
    [ -f "$root/$src" ] || { echo "$0: $key has no $src" >&2; exit 1; }
    sum=$(sha256sum "$root/$src" | cut -d' ' -f1)
    if [ "$MODE" = check ]; then
        have=$(sha256sum "$VENDOR/$dest" 2>/dev/null | cut -d' ' -f1 || true)
        if [ "$have" != "$sum" ]; then
            echo "DIFFERS: $dest (npm $key $src)" >&2
            status=1
        else
            echo "ok: $dest" >&2
        fi
        continue
    fi
    cp "$root/$src" "$VENDOR/$dest"
    chmod 644 "$VENDOR/$dest"
    if [[ "$LICENCE_DONE" != *" $pkg "* ]]; then
        licence_file=$(find "$root" -maxdepth 1 -type f \
            -iregex '.*/licen[cs]e\(\.md\|\.txt\)?' | sort | head -n 1)
        [ -n "$licence_file" ] || { echo "$0: $key ships no LICENSE file" >&2; exit 1; }
        cp "$licence_file" "$VENDOR/licenses/$pkg.txt"
        chmod 644 "$VENDOR/licenses/$pkg.txt"
        LICENCE_DONE="$LICENCE_DONE$pkg "
    fi
    ROWS+="| \`$dest\` | \`$pkg\` | $ver | $licence | \`$src\` | \`$sum\` |"$'\n'
done

if [ "$MODE" = check ]; then
    exit "$status"
fi

INTEGRITIES=""
for key in $(printf '%s\n' "${!INTEGRITY[@]}" | sort); do
    INTEGRITIES+="- \`$key\`: \`${INTEGRITY[$key]}\`"$'\n'
done

cat >"$VENDOR/VENDORED.md" <<EOF
# Vendored front-end libraries

The web console serves these files itself (\`/static/vendor/...\`); nothing is loaded from a CDN
at run time. They come unmodified from the npm packages below. This file is written by
\`scripts/vendor_js.sh\`; \`tests/unit/web/test_vendored.py\` checks that every file listed here
exists with this sha256, and \`tests/browser/test_vendored_smoke.py\` loads them together in
Chromium.

| File | Package | Version | Licence | From (in the package) | sha256 |
|------|---------|---------|---------|-----------------------|--------|
$ROWS
Licence texts: \`licenses/<package>.txt\` (each package's own LICENSE file).

npm tarball integrity (as reported by \`npm pack\`):

$INTEGRITIES
## Loading them

Plain \`<script>\` tags, in this order (each one registers itself on the globals of the ones
before it):

\`\`\`html
<script src="/static/vendor/htmx.min.js"></script>            <!-- window.htmx -->
<script src="/static/vendor/htmx-ext-sse.js"></script>        <!-- hx-ext="sse" -->
<script src="/static/vendor/cytoscape.min.js"></script>       <!-- window.cytoscape -->
<script src="/static/vendor/cytoscape-dagre.js"></script>     <!-- layout "dagre" -->
<script src="/static/vendor/lodash.min.js"></script>          <!-- window._, for edgehandles -->
<script src="/static/vendor/cytoscape-edgehandles.js"></script> <!-- cy.edgehandles() -->
\`\`\`

Notes:

- \`cytoscape-dagre\` 4.x bundles dagre 3.0.0 (\`@dagrejs/dagre\`) inside its own file, so it
  does not need \`dagre.min.js\`. \`dagre.min.js\` (the \`dagre\` package, 0.8.5, its last release;
  it bundles graphlib and lodash) is vendored for pages that want \`window.dagre\` directly; it is
  optional and independent of the copy inside \`cytoscape-dagre.js\`.
- \`cytoscape-edgehandles\` 4.0.1's browser build takes \`lodash.memoize\` and \`lodash.throttle\`
  from the global \`_\` (\`_.memoize\`, \`_.throttle\`): load \`lodash.min.js\` before it.
- \`htmx-ext-sse\` 2.x needs htmx 2.x (\`htmx.org\` ^2.0.2); htmx 4 is a different API.
- \`cytoscape-dagre.js\` ends with a \`sourceMappingURL\` comment; the map is vendored next to it.

## Refreshing

\`\`\`sh
scripts/vendor_js.sh            # or: make vendor
scripts/vendor_js.sh --check    # compare the vendored files with npm, change nothing
\`\`\`

To upgrade a library, edit its version in \`PINS\` in \`scripts/vendor_js.sh\` (check the
peer requirements with \`npm view <package>@<version> peerDependencies dependencies\`), run the
script, review \`git diff\`, and run \`pytest tests/unit/web tests/browser\`.
EOF
echo "wrote $VENDOR (see $VENDOR/VENDORED.md)" >&2
