# run N's routed model on the git test split, with the peers and the voice check (as runs/eval-k-test)
python scripts/evaluate.py --model runs/s2-router-n/model --data_dir data/corpus-git-v1 --split test --max_items 120 \
    --metrics pesq,si_sdr,dnsmos --voice --threads 1 --processes 2 --no_progress --output_dir runs/eval-n-test
