#!/usr/bin/env bash
# Regenerates the fuzz seed corpora in tests/fuzz/seeds/ from real tools (gzip, pigz, bgzip,
# zstd, lz4, GNU tar, bsdtar) and from sluice itself. The seeds are committed; run this only to
# change them. Usage: tests/fuzz/make-seeds.sh PATH/TO/sluice
# Decoder seeds start with one byte the target reads as its thread count (0: one, 1: two); tar
# seeds with two bytes that pick where the archive is cut in two writes.
set -euo pipefail
sluice=$(realpath "$1")
here=$(cd "$(dirname "$0")" && pwd)
seeds=$here/seeds
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"

rm -rf "$seeds" && mkdir -p "$seeds"/{gzip,zstd,lz4,tar,zip,pipeline}
python3 - <<'PY'
import random
random.seed(7)
words = "sluice chunk frame member block header stream order graph bound error".split()
open("text", "w").write(" ".join(random.choice(words) for _ in range(1500)))  # ~10 KB
open("small", "w").write("hello, sluice\n")
PY
: > empty
# seed NAME FORMAT FILE: the file with a thread byte in front, once per thread count worth having.
seed() { for t in 0 1; do { printf "\\x0$t"; cat "$3"; } > "$seeds/$2/$1-j$((t + 1))"; done; }

# gzip
gzip -c text > a.gz && seed gzip-6 gzip a.gz
gzip -9 -n -c small > b.gz && seed gzip-9-noname gzip b.gz
gzip -c empty > e.gz && seed gzip-empty gzip e.gz
cat a.gz b.gz > ab.gz && seed gzip-two-members gzip ab.gz
# A member per part of 1000 bytes, then one holding two gzip members stored (their headers inside
# it): two threads take each member as a unit, guessing where it ends from the next header.
split -b 1000 text part. && for p in part.*; do gzip -n -c "$p"; done > parts.gz
cat b.gz b.gz | pigz -0 -c > holder.gz && cat parts.gz holder.gz b.gz > pm.gz && seed members-per-part gzip pm.gz
pigz -p2 -b 128 -c text > p.gz && seed pigz gzip p.gz
# pigz's shape, small: a sync flush every 300 bytes of input, so that two threads guess pieces.
python3 -c "
import sys, zlib
text = open('text', 'rb').read()
z = zlib.compressobj(6, zlib.DEFLATED, 31)
parts = [z.compress(text[i:i + 300]) + z.flush(zlib.Z_SYNC_FLUSH) for i in range(0, len(text), 300)]
sys.stdout.buffer.write(b''.join(parts) + z.flush())" > f.gz && seed sync-flush-every-300 gzip f.gz
# gzip's shape (no sync flush), small: blocks of at most 128 symbols (zlib's memLevel 1), so that
# two threads cut pieces where blocks begin.
python3 -c "
import sys, zlib
z = zlib.compressobj(6, zlib.DEFLATED, 31, 1)
sys.stdout.buffer.write(z.compress(open('text', 'rb').read() * 3) + z.flush())" > m.gz && seed blocks-of-128-symbols gzip m.gz
bgzip -c text > t.bgz && seed bgzf gzip t.bgz
"$sluice" --independent --chunk-size 4K -c text > i.gz && seed sluice-independent gzip i.gz
"$sluice" --multi-member --chunk-size 4K -c text > m.gz && seed sluice-multi-member gzip m.gz
# Stored chunks whose data holds the sync flush pattern "00 00 ff ff": false chunk ends.
python3 -c "import os, sys; sys.stdout.buffer.write(b''.join(os.urandom(500) + bytes([0, 0, 255, 255]) for _ in range(20)))" > fool
"$sluice" --chunk-size 4K -c fool > f.gz && seed sluice-independent-false-ends gzip f.gz
"$sluice" -F gzip --single-member --chunk-size 4K -c text > s.gz && seed sluice-single-member gzip s.gz

# zstd
zstd -q -c text > a.zst && seed zstd zstd a.zst
zstd -q --no-check -c small > b.zst && seed zstd-no-check zstd b.zst
zstd -q -c empty > e.zst && seed zstd-empty zstd e.zst
zstd -q -c < text > u.zst && seed zstd-unknown-size zstd u.zst
cat a.zst b.zst > ab.zst && seed zstd-two-frames zstd ab.zst
# A skippable frame (magic 0x184D2A50, 4 bytes of payload) before a frame.
{ printf '\x50\x2a\x4d\x18\x04\x00\x00\x00skip'; cat b.zst; } > k.zst && seed zstd-skippable zstd k.zst
"$sluice" -F zstd --chunk-size 4K -c text > s.zst && seed sluice-zstd zstd s.zst

# lz4
lz4 -q -c text > a.lz4 && seed lz4 lz4 a.lz4
# Linked blocks only with more than one block: 64 KiB blocks over eight copies of the text.
for i in 1 2 3 4 5 6 7 8; do cat text; done > text8
lz4 -q -BD -B4 -c text8 > d.lz4 && seed lz4-linked lz4 d.lz4
lz4 -q -BX -B4 -c text > x.lz4 && seed lz4-block-checksums lz4 x.lz4
lz4 -q --content-size -c text > c.lz4 && seed lz4-content-size lz4 c.lz4
lz4 -q -l -c text > l.lz4 && seed lz4-legacy lz4 l.lz4
cat l.lz4 a.lz4 l.lz4 > la.lz4 && seed lz4-legacy-frame-legacy lz4 la.lz4
cat d.lz4 l.lz4 > dl.lz4 && seed lz4-linked-then-legacy lz4 dl.lz4  # legacy in the streaming decoder
lz4 -q -c empty > e.lz4 && seed lz4-empty lz4 e.lz4
# sluice's lz4: one frame of blocks with block checksums (three blocks here; the empty stream is
# the header and the EndMark).
"$sluice" -F lz4 --chunk-size 4K -c text > s.lz4 && seed sluice-lz4-one-frame lz4 s.lz4
"$sluice" -F lz4 -c empty > se.lz4 && seed sluice-lz4-one-frame-empty lz4 se.lz4
# What earlier versions of sluice wrote: a frame per 4 KiB block, with content size and checksum.
split -b 4096 text piece. && for p in piece.*; do lz4 -q --content-size -c "$p"; done > fp.lz4
seed lz4-frame-per-block lz4 fp.lz4

# tar: every header flavour, and every kind of entry
mkdir -p tree/dir && cp small tree/dir/file && ln -s dir/file tree/link && ln tree/dir/file tree/hard
mkfifo tree/fifo
long=tree/$(printf 'd%.0s' {1..60})/$(printf 'n%.0s' {1..70})-ü.txt
mkdir -p "$(dirname "$long")" && cp small "$long"
tarseed() { { printf '\x01\x37'; cat "$2"; } > "$seeds/tar/$1"; }
for format in gnu posix ustar v7; do
  what=tree  # ustar cannot hold the long name, v7 neither that nor the FIFO
  [[ $format == ustar ]] && what="tree/dir tree/link tree/hard tree/fifo"
  [[ $format == v7 ]] && what="tree/dir tree/link tree/hard"
  tar --format=$format -cf $format.tar $what && tarseed gnu-tar-$format $format.tar
done
bsdtar -cf bsd.tar --format pax tree && tarseed bsdtar-pax bsd.tar
"$sluice" tar -c -F none -f own.tar tree && tarseed sluice own.tar
printf '\x00\x00' > "$seeds/tar/empty"
# Sparse files in every form (old GNU with an extension block, pax 0.0, 0.1, 1.0), small.
mkdir -p sp && python3 -c "
f = open('sp/s.bin', 'wb')
for i in range(6): f.seek(i * 8192); f.write(bytes([65 + i]) * 100)
f.truncate(60000)"
tar --format=gnu -S -cf sparse-gnu.tar sp && tarseed sparse-gnu sparse-gnu.tar
for v in 0.0 0.1 1.0; do tar --format=posix -S --sparse-version=$v -cf sparse-$v.tar sp && tarseed sparse-pax-$v sparse-$v.tar; done
"$sluice" tar -c -S -F none -f sparse-own.tar sp && tarseed sparse-sluice sparse-own.tar
# Hostile and odd archives, byte by byte (tests/tar_hostile_tests.cpp has one test per class).
python3 "$here/make-odd-tars.py" "$seeds/tar"

# zip: every writer we interoperate with, stored and deflated, data descriptors, zip64 (the thread
# byte in front, as for the decoders)
cp text tree/text
zipseed() { { printf '\x01'; cat "$2"; } > "$seeds/zip/$1"; }
(cd tree && zip -qry ../infozip.zip dir link text && zip -qr - dir text | cat > ../infozip-stream.zip && zip -qry0 ../infozip-stored.zip dir text)
zipseed infozip infozip.zip && zipseed infozip-descriptors infozip-stream.zip && zipseed infozip-stored infozip-stored.zip
bsdtar --format zip -cf bsd.zip -C tree dir link text && zipseed bsdtar bsd.zip
(cd tree && 7zz a -tzip -snl ../7z.zip dir link text >/dev/null) && zipseed 7zip 7z.zip
"$sluice" zip -c --chunk-size 4K -o own.zip -C tree dir link text && zipseed sluice own.zip
"$sluice" zip -c -F zstd --chunk-size 4K -o own-zstd.zip -C tree dir text && zipseed sluice-zstd own-zstd.zip
"$sluice" zip -c --chunk-size 4K -o - -C tree dir text > own-stream.zip && zipseed sluice-stream own-stream.zip
python3 -c "
import zipfile
with zipfile.ZipFile('py64.zip', 'w', zipfile.ZIP_DEFLATED, allowZip64=True) as z:
    with z.open('big', 'w', force_zip64=True) as f: f.write(b'zip64 ' * 100)
    z.writestr('dir/', b'')" && zipseed python-zip64 py64.zip
# The methods libbz2 and liblzma decode: bzip2 and LZMA (Python), xz (7-Zip).
python3 -c "
import zipfile
for name, method in (('bz2.zip', zipfile.ZIP_BZIP2), ('lzma.zip', zipfile.ZIP_LZMA)):
    with zipfile.ZipFile(name, 'w', method) as z: z.write('text')" && zipseed python-bzip2 bz2.zip && zipseed python-lzma lzma.zip
7zz a -tzip -mm=XZ xz.zip text >/dev/null && zipseed 7zip-xz xz.zip

# pipeline files
cp "$here"/../../examples/pipelines/*.toml "$seeds/pipeline/"
echo "seeds: $(find "$seeds" -type f | wc -l) files, $(du -sh "$seeds" | cut -f1)"
