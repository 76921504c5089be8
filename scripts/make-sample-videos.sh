#!/usr/bin/env bash
# Regenerates the demo's sample videos in web/media/ with Debian's ffmpeg (apt-get install -y ffmpeg).
# The files are committed, so the demo and the browser tests need no ffmpeg; run this only to change them.
set -euo pipefail
cd "$(dirname "$0")/../web/media"

font=/usr/share/fonts/truetype/dejavu/DejaVuSans-Bold.ttf
mono=/usr/share/fonts/truetype/dejavu/DejaVuSansMono.ttf

# make <video_id> <title> <four gradient colours>: 20 s of drifting colour with a title and a clock.
make() {
  local id=$1 title=$2 c0=$3 c1=$4 c2=$5 c3=$6
  ffmpeg -hide_banner -loglevel error -y \
    -f lavfi -i "gradients=s=640x360:r=24:c0=$c0:c1=$c1:c2=$c2:c3=$c3:n=4:speed=0.02:d=20" \
    -vf "drawtext=fontfile=$font:text='$title':fontsize=44:fontcolor=white@0.85:x=(w-tw)/2:y=h*0.42,\
drawtext=fontfile=$mono:text='%{pts\:hms}':fontsize=18:fontcolor=white@0.7:x=w-tw-16:y=h-th-14" \
    -c:v libvpx-vp9 -b:v 0 -crf 46 -row-mt 1 -deadline good -cpu-used 4 -pix_fmt yuv420p "$id.webm"
  echo "web/media/$id.webm: $(stat -c %s "$id.webm") bytes"
}

make 100001 AURORA 0x0b1d51 0x7b2ff7 0xf107a3 0xff8c42
make 100002 OCEAN 0x03045e 0x0077b6 0x00b4d8 0x90e0ef
make 100003 FOREST 0x081c15 0x2d6a4f 0x74c69d 0xd8f3dc
