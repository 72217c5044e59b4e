#!/usr/bin/env bash
# On the GPU machine (no internet, 64 MiB carried per call): gather the DALI wheel pieces that
# earlier calls carried one at a time, and install DALI once all have arrived. Run from the repository
# root, carrying .dali/PIECES.sha256, .dali/WHEELS.sha256 and one .dali/pieces/part_N per call, on
# back-to-back calls (/var/tmp survives while the machine stays warm). How the pieces are made:
# benchmarks/README.md, "Data loader speed". Afterwards: export PYTHONPATH=$SITE (default /var/tmp/site).
set -euo pipefail
STORE=${STORE:-/var/tmp/dali}
SITE=${SITE:-/var/tmp/site}
mkdir -p "$STORE"
cp .dali/PIECES.sha256 .dali/WHEELS.sha256 "$STORE/"
for piece in .dali/pieces/part_*; do
    if [ -f "$piece" ]; then cp "$piece" "$STORE/"; fi
done
cd "$STORE"
have=$(ls part_* 2>/dev/null | wc -l)
need=$(wc -l < PIECES.sha256)
grep -F -w -f <(ls part_*) PIECES.sha256 | sha256sum --quiet -c -
echo "DALI pieces received and intact: $have of $need"
if [ "$have" -lt "$need" ]; then
    exit 0
fi
mkdir -p wheels
cat part_* | tar -xf - -C wheels
(cd wheels && sha256sum --quiet -c ../WHEELS.sha256)
python3 -m pip install -q --no-index --no-deps --no-compile --target "$SITE" wheels/*.whl
echo "DALI installed into $SITE: export PYTHONPATH=$SITE (after any other site folder)"
