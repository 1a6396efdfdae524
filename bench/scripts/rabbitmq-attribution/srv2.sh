#!/bin/bash
# usage: srv2.sh label -- cmd : beam user/sys ms, syscalls, write bytes, ctx switches, per thread-kind CPU
label=$1; shift; shift
B=$(pgrep -x beam.smp | head -1)
snap() {
  read u s < <(awk '{print $14, $15}' /proc/$B/stat)
  sr=$(awk '/^syscr/{print $2}' /proc/$B/io); sw=$(awk '/^syscw/{print $2}' /proc/$B/io); wc=$(awk '/^wchar/{print $2}' /proc/$B/io)
  cs=$(cat /proc/$B/task/*/status | awk '/ctxt_switches/{s+=$2} END{print s}')
  sch=0; dio=0; oth=0
  for t in /proc/$B/task/*; do c=$(cat $t/comm); v=$(awk '{print $14+$15}' $t/stat); case $c in *_scheduler) sch=$((sch+v));; *dirty_io*) dio=$((dio+v));; *) oth=$((oth+v));; esac; done
  echo $u $s $sr $sw $wc $cs $sch $dio $oth
}
a=($(snap)); out=$("$@" 2>/dev/null | tail -c 3000); b=($(snap))
ops=$(echo "$out" | grep -o '"ordersPerS": *[0-9.]*' | head -1)
echo "$label user=$(( (b[0]-a[0])*10 ))ms sys=$(( (b[1]-a[1])*10 ))ms syscr=$((b[2]-a[2])) syscw=$((b[3]-a[3])) wMB=$(( (b[4]-a[4])/1000000 )) ctxsw=$((b[5]-a[5])) sched=$(( (b[6]-a[6])*10 ))ms dirtyio=$(( (b[7]-a[7])*10 ))ms other=$(( (b[8]-a[8])*10 ))ms $ops load=$(cut -d' ' -f1 /proc/loadavg)"
