# git test split, 120 clips: the target-0.1 model routed and at its own static 0.125 and 0.25 (the paper's claim)
COMMON="--model runs/s2-pesq-a-t01/model --data_dir data/corpus-git-v1 --split test --max_items 120 --metrics pesq,si_sdr,dnsmos --threads 1 --no_progress --no_rnnoise --no_deepfilternet"
python scripts/evaluate.py $COMMON --factors 0.25 --output_dir runs/eval-s2pesqa-t01-test-1 &
python scripts/evaluate.py $COMMON --factors 0.125 --output_dir runs/eval-s2pesqa-t01-test-2
wait
mkdir -p runs/eval-s2pesqa-t01-test
cat runs/eval-s2pesqa-t01-test-{1,2}/items.jsonl > runs/eval-s2pesqa-t01-test/items.jsonl
python scripts/evaluate.py $COMMON --factors 0.125,0.25 --output_dir runs/eval-s2pesqa-t01-test
