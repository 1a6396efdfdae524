#!/usr/bin/env python3
import json,sys,re,collections
# usage: red.py FILE.json... : reductions and broker socket calls per order between the two snapshots framecount.mjs took (session 12, rmq12)
# usage: red.py name...  : reductions per order between the two snapshots, by category, for my ports and my queues
for n in sys.argv[1:]:
  r=json.load(open(n))
  ports=set(str(p) for p in r['ports'])
  snaps=sorted(r['snaps'], key=lambda s:s['at'])
  if len(snaps)<2: print(n,'no snaps'); continue
  def conns(out):
    d={}
    for line in out.splitlines():
      f=line.split('\t')
      if f[0]=='conn' and f[1] in ports: d[f[1]]=[int(x) for x in f[2:]]
    return d
  ca,cb=conns(snaps[0]['out']),conns(snaps[1]['out'])
  def parse(out):
    d={}
    for line in out.splitlines():
      if line.startswith('conn\t'): continue
      if '\t' in line:
        k,v=line.rsplit('\t',1); d[k]=int(v)
    return d
  a,b=parse(snaps[0]['out']),parse(snaps[1]['out'])
  pubs=snaps[1]['done']-snaps[0]['done']; orders=pubs/5.4
  cat=collections.Counter(); chans={}
  for k in b:
    dv=b[k]-a.get(k,0)
    m=re.search(r'127\.0\.0\.1:(\d+) ->',k)
    if m:
      if m.group(1) in ports:
        cat[k.split(',')[0].strip('{')]+=dv
        if k.startswith('{ch'): chans[k]=dv
      continue
    if 'reg' in k and ('%2F_' in k): 
      if any(x in k for x in r.get('prefixes',[])) or True: cat['qq:'+('retry' if 'retry' in k else 'dlq' if 'dlq' in k else 'main')]+=dv
      continue
    if 'ra_log_wal' in k or 'ra_log_segment' in k: cat[k]+=dv; continue
    cat['other']+=dv
  print(n, 'orders=%.0f'%orders, ' '.join('%s=%.0f'%(k,v/orders) for k,v in sorted(cat.items())), 'mine=%.0f'%(sum(v for k,v in cat.items() if k not in ('other',) and 'ra_log' not in k)/orders))

  tot=[sum(cb[p][i]-ca.get(p,[0]*4)[i] for p in cb) for i in range(4)]
  print('   broker recv calls/order=%.2f send calls/order=%.2f recv B/order=%.0f send B/order=%.0f conns=%d'%(tot[0]/orders,tot[1]/orders,tot[2]/orders,tot[3]/orders,len(cb)))
  if '-v' in sys.argv[0:1] or True:
    for k,v in sorted(chans.items()): print('   ',k,'%.0f'%(v/orders))
