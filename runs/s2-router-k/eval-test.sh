# git test split, 120 clips: run K (runs/s2-router-k: stage 1 from run I, the router refitted) at every width, routed, and the peers, with the voice check; 2 worker process(es)
python scripts/evaluate.py --model runs/s2-router-k/model --data_dir data/corpus-git-v1 --split test --max_items 120 \
  --metrics pesq,si_sdr,dnsmos --voice --threads 1 --processes 2 --no_progress --output_dir runs/eval-k-test "$@"
