# continuation of runs/s1-slim-t2 from its weights, a 10-update warm-up so the fresh optimizer does not jolt the weights
accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision bf16 --dynamo_backend no \
  scripts/train.py --config configs/git_corpus_b64.yaml --stage 1 --mixed_precision bf16 \
  --init_from /work/main/runs/s1-slim-t2/model \
  --model compressed_weight=1.0 stft_mag_factor=0.0 suppression_weight=1.0 slim_bottleneck=true \
  --gain_learning_rate 6.7e-2 --distillation_weight 0.5 --factor_weights 1 1 1 4 --narrow_factors_per_step 1 \
  --gradient_accumulation_steps 4 --learning_rate 2e-4 --lr_scheduler cosine --lr_warmup_steps 10 \
  --max_train_steps 80 --validation_steps 40 --checkpointing_steps 5 --max_valid_items 120 --final_model last \
  --seed 26 --output_dir /work/main/runs/s1-slim-u
