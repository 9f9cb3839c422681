# continuation of runs/s1-slim-t from its committed update-55 weights (new optimizer; cosine from 2.5e-4, the rate
# run T's own schedule had reached at update 55), in bfloat16 on this AVX-512 BF16 machine
accelerate launch --multi_gpu --num_processes 2 --num_machines 1 --mixed_precision bf16 --dynamo_backend no \
  scripts/train.py --config configs/git_corpus_b64.yaml --stage 1 --mixed_precision bf16 \
  --init_from runs/s1-slim-t/update55 \
  --model compressed_weight=1.0 stft_mag_factor=0.0 suppression_weight=1.0 slim_bottleneck=true \
  --gain_learning_rate 8.3e-2 --distillation_weight 0.5 --factor_weights 1 1 1 4 --narrow_factors_per_step 1 \
  --gradient_accumulation_steps 4 --learning_rate 2.5e-4 --lr_scheduler cosine --lr_warmup_steps 2 \
  --max_train_steps 145 --validation_steps 50 --checkpointing_steps 5 --max_valid_items 120 --final_model last \
  --seed 25 --output_dir /work/main/runs/s1-slim-t2
