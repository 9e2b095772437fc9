#!/usr/bin/env bash
# GPU check: on a machine with an NVIDIA GPU and the native TensorFlow package installed, runs the
# descriptor-training benchmark and a short Flowers-17 bootstrap on native TensorFlow and on wasm,
# and prints the throughput of each. Run it whenever a GPU machine is available:
#
#   npm install --no-save @tensorflow/tfjs-node-gpu@4.22.0   # matching @tensorflow/tfjs; needs CUDA 11.8 + cuDNN 8
#   bash scripts/gpu-check.sh
#
# The machine needs ../shared/data/flowers17 for the bootstrap part (skipped with a message without it).
set -euo pipefail
cd "$(dirname "$0")/.."

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader || echo "nvidia-smi: no GPU visible"
node -e "import('@tensorflow/tfjs-node-gpu').then(() => console.log('tfjs-node-gpu loads'), (e) => { console.log('tfjs-node-gpu does not load: ' + String(e.message).split('\n')[0]); process.exit(1); })"

[ -d dist ] || npm run build
echo
echo "== descriptor training step (2048 → 512, batch 256) =="
for backend in tensorflow wasm; do
  line=$(npx tsx scripts/bench-train.ts --backend "$backend" | tail -1)
  echo "$backend: $line"
done

flowers=../shared/data/flowers17
if [ ! -d "$flowers" ]; then
  echo "skipping the Flowers-17 bootstrap: $flowers is absent"
  exit 0
fi
echo
echo "== Flowers-17 bootstrap, one iteration, defaults =="
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
awk 'NR==FNR { q[$1] = 1; next } !($1 in q) { print "'"$flowers"'/images/" $1 }' data/splits/flowers17-queries.txt "$flowers/files.txt" > "$tmp/db.txt"
paste -d' ' "$flowers/files.txt" "$flowers/labels.txt" | awk 'NR==FNR { q[$1] = 1; next } !($1 in q) { print $2 }' data/splits/flowers17-queries.txt - > "$tmp/labels.txt"
for backend in tensorflow wasm; do
  start=$(date +%s)
  node bin/ddistill.js bootstrap --images "$tmp/db.txt" --labels "$tmp/labels.txt" --iterations 1 --backend "$backend" --out "$tmp/run-$backend" > "$tmp/$backend.log" 2>&1
  end=$(date +%s)
  echo "$backend: $((end - start)) s for $(wc -l < "$tmp/db.txt") photos; $(grep -m1 -i 'backend\|tensorflow' "$tmp/$backend.log" || true)"
  tail -3 "$tmp/$backend.log"
done
