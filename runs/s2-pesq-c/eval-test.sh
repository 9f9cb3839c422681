# git test split, 120 clips: the stage-2 model from run C (runs/s2-pesq-c) at every width, routed, and the peers (two processes)
COMMON="--model runs/s2-pesq-c/model --data_dir data/corpus-git-v1 --split test --max_items 120 --metrics pesq,si_sdr,dnsmos --threads 1 --no_progress"
python scripts/evaluate.py $COMMON --factors 0.125,0.25 --output_dir runs/eval-s2pesqc-test-1 &
python scripts/evaluate.py $COMMON --factors 0.5,1.0 --no_rnnoise --no_deepfilternet --output_dir runs/eval-s2pesqc-test-2
wait
mkdir -p runs/eval-s2pesqc-test
cat runs/eval-s2pesqc-test-{1,2}/items.jsonl > runs/eval-s2pesqc-test/items.jsonl
python scripts/evaluate.py $COMMON --output_dir runs/eval-s2pesqc-test
