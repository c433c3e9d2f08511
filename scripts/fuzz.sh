#!/usr/bin/env bash
# Builds the libFuzzer targets (fuzz/*.cpp, clang + ASan + UBSan) in their own build directory and runs
# each for a while from a small generated seed corpus.
#
#   scripts/fuzz.sh [SECONDS_PER_TARGET (default 30)] [TARGET ...]
#   (targets: fuzz_gguf fuzz_safetensors fuzz_load; default all)
#
# Environment: FUZZ_BUILD (build dir, default build-fuzz), JOBS (build jobs, default 2), CC/CXX
# (default clang-14/clang++-14). Crashes are written to $FUZZ_BUILD/artifacts/ and fail the script.
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
secs="${1:-30}"
shift || true
targets=("$@")
[ ${#targets[@]} -eq 0 ] && targets=(fuzz_gguf fuzz_safetensors fuzz_load)
build="${FUZZ_BUILD:-$root/build-fuzz}"
jobs="${JOBS:-2}"

CC="${CC:-clang-14}" CXX="${CXX:-clang++-14}" cmake -S "$root" -B "$build" -G Ninja \
  -DCMAKE_BUILD_TYPE=RelWithDebInfo -DLOWBIT_CUDA=OFF -DLOWBIT_TESTS=OFF -DLOWBIT_FUZZ=ON >/dev/null
ninja -C "$build" -j "$jobs" "${targets[@]}"

seeds="$build/seeds"
mkdir -p "$seeds/fuzz_gguf" "$seeds/fuzz_safetensors" "$seeds/fuzz_load" "$build/artifacts"
# Seeds: small valid files of every shape the parsers accept, written fresh each run.
python3 - "$seeds" <<'PY'
import json, struct, sys, os
out = sys.argv[1]

def s(x):
    b = x.encode()
    return struct.pack('<Q', len(b)) + b

def kv(key, t, payload):
    return s(key) + struct.pack('<I', t) + payload

def gguf(version, kvs, tensors, align=32):
    head = b'GGUF' + struct.pack('<IQQ', version, len(tensors), len(kvs)) + b''.join(kvs)
    infos, data = b'', b''
    for name, dims, typ, payload in tensors:
        off = (len(data) + align - 1) // align * align
        data = data.ljust(off, b'\0') + payload
        infos += s(name) + struct.pack('<I', len(dims)) + b''.join(struct.pack('<Q', d) for d in dims)
        infos += struct.pack('<IQ', typ, off)
    f = head + infos
    if tensors:
        f = f.ljust((len(f) + align - 1) // align * align, b'\0') + data
    return f

f16 = lambda v: struct.pack('<e', v)
q8 = f16(0.5) + bytes((j - 16) & 0xff for j in range(32))
q40 = f16(0.25) + bytes((j | ((15 - j) << 4)) for j in range(16))
q41 = f16(2.0) + f16(-1.5) + bytes(range(16))
kvs = [
    kv('general.architecture', 8, s('llama')),
    kv('llama.block_count', 4, struct.pack('<I', 2)),
    kv('llama.rope.freq_base', 6, struct.pack('<f', 10000.0)),
    kv('flag', 7, b'\x01'),
    kv('i64', 11, struct.pack('<q', -5)),
    kv('f64', 12, struct.pack('<d', 1.5)),
    kv('tokenizer.ggml.tokens', 9, struct.pack('<IQ', 8, 3) + s('a') + s('<|im_end|>') + s('')),
    kv('tokenizer.ggml.token_type', 9, struct.pack('<IQ', 5, 3) + struct.pack('<3i', 1, 3, 1)),
    kv('scores', 9, struct.pack('<IQ', 6, 2) + struct.pack('<2f', 0.5, -1.0)),
    kv('nested', 9, struct.pack('<IQ', 9, 1) + struct.pack('<IQ', 8, 1) + s('x')),
]
tensors = [
    ('token_embd.weight', [8, 2], 0, struct.pack('<16f', *range(16))),
    ('q8', [32], 8, q8), ('q40', [32], 2, q40), ('q41', [32, 2], 3, q41 * 2),
    ('f16', [4], 1, f16(1.0) * 4), ('bf16', [4], 30, b'\x80\x3f' * 4),
]
seeds = {
    'v3.gguf': gguf(3, kvs, tensors),
    'v2_align64.gguf': gguf(2, [kv('general.alignment', 4, struct.pack('<I', 64))], tensors[:2], 64),
    'meta_only.gguf': gguf(3, kvs, []),
}
for n, b in seeds.items():
    open(os.path.join(out, 'fuzz_gguf', n), 'wb').write(b)

def st(entries, meta=None):
    hdr, data = {}, b''
    if meta: hdr['__metadata__'] = meta
    for name, dtype, shape, payload in entries:
        hdr[name] = {'dtype': dtype, 'shape': shape, 'data_offsets': [len(data), len(data) + len(payload)]}
        data += payload
    h = json.dumps(hdr).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    return struct.pack('<Q', len(h)) + h + data

stseeds = {
    'plain.safetensors': st([('w', 'F32', [2, 2], struct.pack('<4f', 1, 2, 3, 4)),
                            ('b', 'BF16', [3], b'\x80\x3f' * 3), ('e', 'F32', [0], b'')]),
    'lowbit.safetensors': st([('x.codes', 'U8', [5], bytes(5)), ('n', 'F32', [1], struct.pack('<f', 1))],
                             {'lowbit.format': '1', 'lowbit.tensors': '{"x": {"rows": 1}}'}),
}
for n, b in stseeds.items():
    open(os.path.join(out, 'fuzz_safetensors', n), 'wb').write(b)

# fuzz_load: complete tiny models in each format load_model reads.
import random
rnd = random.Random(1)
def floats(n):
    return struct.pack('<%df' % n, *[rnd.uniform(-1, 1) for _ in range(n)])
def q8_rows(rows, cols):
    return b''.join(f16(0.01) + bytes(rnd.randrange(256) for _ in range(32)) for _ in range(rows * cols // 32))
dim, hidden, heads, kv_heads, vocab = 32, 32, 2, 1, 4
kvd = dim // heads * kv_heads
meta = [kv('general.architecture', 8, s('llama')),
        kv('llama.embedding_length', 4, struct.pack('<I', dim)),
        kv('llama.feed_forward_length', 4, struct.pack('<I', hidden)),
        kv('llama.block_count', 4, struct.pack('<I', 1)),
        kv('llama.attention.head_count', 4, struct.pack('<I', heads)),
        kv('llama.attention.head_count_kv', 4, struct.pack('<I', kv_heads)),
        kv('llama.context_length', 4, struct.pack('<I', 64)),
        kv('tokenizer.ggml.tokens', 9, struct.pack('<IQ', 8, 4) + s('a') + s('<|im_end|>') + s('b') + s('c'))]
ts = [('token_embd.weight', [dim, vocab], 8, q8_rows(vocab, dim)),
      ('blk.0.attn_norm.weight', [dim], 0, floats(dim)),
      ('blk.0.attn_q.weight', [dim, dim], 8, q8_rows(dim, dim)),
      ('blk.0.attn_k.weight', [dim, kvd], 2, b''.join(f16(0.1) + bytes(16) for _ in range(kvd))),
      ('blk.0.attn_v.weight', [dim, kvd], 3, b''.join(f16(0.1) + f16(0.0) + bytes(16) for _ in range(kvd))),
      ('blk.0.attn_output.weight', [dim, dim], 8, q8_rows(dim, dim)),
      ('blk.0.ffn_norm.weight', [dim], 0, floats(dim)),
      ('blk.0.ffn_gate.weight', [dim, hidden], 8, q8_rows(hidden, dim)),
      ('blk.0.ffn_up.weight', [dim, hidden], 8, q8_rows(hidden, dim)),
      ('blk.0.ffn_down.weight', [hidden, dim], 8, q8_rows(dim, hidden)),
      ('output_norm.weight', [dim], 0, floats(dim))]
open(os.path.join(out, 'fuzz_load', 'tiny.gguf'), 'wb').write(gguf(3, meta, ts))

d, h, L, nh, nkv, v, seq = 8, 8, 1, 2, 1, 4, 2
hs = d // nh
kvd = d * nkv // nh
n = v*d + L*d + L*d*d + 2*L*d*kvd + L*d*d + L*d + 3*L*d*h + d + seq*hs
open(os.path.join(out, 'fuzz_load', 'tiny_llama2c.bin'), 'wb').write(
    struct.pack('<7i', d, h, L, nh, nkv, v, seq) + floats(n))

cfg = {'arch': 'llama', 'dim': d, 'hidden_dim': h, 'n_layers': 1, 'n_heads': nh, 'n_kv_heads': nkv,
       'head_dim': hs, 'vocab_size': v, 'max_seq_len': 16, 'rope_theta': 10000.0,
       'rope_scaling': {'type': '', 'factor': 1.0, 'low_freq_factor': 1.0, 'high_freq_factor': 4.0,
                        'original_max_position': 8192},
       'rope_interleaved': True, 'norm_eps': 1e-5, 'tie_embeddings': True, 'bos_id': 1, 'eos_id': 2,
       'stop_ids': [2]}
shapes = {'tok_embeddings': (v, d), 'layers.0.attention.wq': (d, d), 'layers.0.attention.wk': (kvd, d),
          'layers.0.attention.wv': (kvd, d), 'layers.0.attention.wo': (d, d),
          'layers.0.feed_forward.w1': (h, d), 'layers.0.feed_forward.w2': (d, h), 'layers.0.feed_forward.w3': (h, d)}
tensors, entries = {}, []
for name, (r, c) in shapes.items():
    fmt = 'int8' if name.endswith('wq') else 'f32'
    tensors[name] = {'format': fmt, 'rows': r, 'cols': c, 'group': 0, 'rule': 'floor', 'tensor_scale': 1.0}
    if fmt == 'int8':
        entries += [(name + '.codes', 'U8', [r * c], bytes(rnd.randrange(256) for _ in range(r * c))),
                    (name + '.scales', 'U8', [r * 4], floats(r))]
    else:
        entries.append((name + '.codes', 'U8', [r * c * 4], floats(r * c)))
for name in ['layers.0.attention_norm', 'layers.0.ffn_norm', 'norm']:
    entries.append((name, 'F32', [d], floats(d)))
open(os.path.join(out, 'fuzz_load', 'tiny.lowbit.safetensors'), 'wb').write(
    st(entries, {'lowbit.format': '1', 'lowbit.config': json.dumps(cfg), 'lowbit.tensors': json.dumps(tensors)}))
PY
cat > "$seeds/safetensors.dict" <<'DICT'
"{"
"}"
"["
"]"
":"
","
"\"dtype\""
"\"shape\""
"\"data_offsets\""
"\"__metadata__\""
"\"F32\""
"\"BF16\""
"\"U8\""
"\"F8_E4M3\""
"18446744073709551615"
"-1"
"1e400"
DICT

status=0
for t in "${targets[@]}"; do
  corpus="$build/corpus/$t"
  mkdir -p "$corpus"
  dict=()
  [ "$t" != fuzz_gguf ] && dict=(-dict="$seeds/safetensors.dict")
  echo "== $t for ${secs}s"
  if ! "$build/$t" -max_total_time="$secs" -max_len=16384 -rss_limit_mb=2048 -timeout=10 -print_final_stats=1 \
       -artifact_prefix="$build/artifacts/$t-" "${dict[@]}" "$corpus" "$seeds/$t" 2>"$build/$t.log"; then
    echo "!! $t found a problem; log: $build/$t.log, artifacts: $build/artifacts/"
    tail -40 "$build/$t.log"
    status=1
  else
    grep -E "stat::number_of_executed_units|stat::peak_rss_mb" "$build/$t.log" || true
  fi
done
exit $status
