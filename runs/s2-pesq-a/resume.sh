# resumed in session 21 from the checkpoint of update 35 of the same command (steps.jsonl logs update 36 twice)
accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision bf16 --dynamo_backend no \
  scripts/train.py --config configs/git_corpus_b64.yaml --stage 2 --mixed_precision bf16 \
  --init_from /work/main/runs/s1-pesq-a/model --target_utilization 0.25 \
  --gain_learning_rate 6.7e-2 --distillation_weight 0.5 --factor_weights 1 1 1 4 --narrow_factors_per_step 1 \
  --gradient_accumulation_steps 4 --max_train_steps 100 --gumbel_noise_decay_steps 75 --validation_steps 50 \
  --checkpointing_steps 5 --max_valid_items 120 --seed 30 --output_dir /work/main/runs/s2-pesq-a \
  --resume_from_checkpoint latest
