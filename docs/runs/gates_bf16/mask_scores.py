"""Would another score have kept some regrown blocks? (docs/quality.md section 16)

In the regrown dense step 119,503 (git show 2826929:checkpoints/cpu384_regrow_rounded/step_00119503.pt
> /tmp/rg/dense_119503.pt), each gate of R and each head ranked by three block scores: the pruner's
mean |w| ("mag"), the Fisher/OBD saliency sum(w^2 v) with v Adam's exp_avg_sq ("fisher w2v"), and
sum(w^2 sqrt(v)); for each, how many of the top 10% blocks are step 118,003's kept blocks. Also the
median ratios, regrown blocks over kept ones, of v and of |w|.
usage (from the repository root): python docs/runs/gates_bf16/mask_scores.py
"""
import torch
from models.sparsity import block_scores, HEADS
s=torch.load('/tmp/rg/dense_119503.pt',weights_only=True,map_location='cpu')
old=torch.load('checkpoints/cpu384/step_00118003.pt',weights_only=True,map_location='cpu')
opt=s['train_state']['optimizer']['state']
pnames=[k for k in s['model'] if k not in ('input_mask','cond_net.input_mean','cond_net.input_std')]
idx={n:i for i,n in enumerate(pnames)}
def blocks(t): return t.float().reshape(t.shape[0]//16,16,t.shape[1]).sum(1)
for name in ['rnn.weight_hh_l0']+[h+'.weight' for h in HEADS]:
    w=s['model'][name]; v=opt[idx[name]]['exp_avg_sq']; m=opt[idx[name]]['exp_avg']
    assert v.shape==w.shape
    oldkeep=(blocks(old['model'][name].abs())>0)
    chunks=[slice(0,384),slice(384,768),slice(768,1152)] if name.startswith('rnn') else [slice(0,w.shape[0])]
    for c in chunks:
        wc,vc,ok=w[c],v[c],oldkeep[c.start//16:c.stop//16]
        mag=blocks(wc.abs()); fisher=blocks(wc**2*vc); taylor=blocks((wc*m[c]).abs())
        n=ok.numel(); k=int(ok.sum())
        for lab,sc in [('mag',mag),('fisher w2v',fisher),('fisher w2sqrtv',blocks(wc**2*vc.sqrt()))]:
            top=torch.zeros(n,dtype=torch.bool); top[torch.argsort(sc.flatten(),descending=True)[:k]]=True
            print(name,c.start,lab,'kept',k,'of',n,'overlap with old mask',int((top&ok.flatten()).sum()))
        print('  v ratio (median over blocks) regrown/kept:', float(blocks(vc)[~ok].median()/blocks(vc)[ok].median()), ' |w| ratio', float(mag[~ok].median()/mag[ok].median()))
