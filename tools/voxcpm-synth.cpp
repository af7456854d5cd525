// voxcpm-synth: text → WAV with a VoxCPM model, mirroring the official generate() arguments.
#include <ATen/Parallel.h>

#include <chrono>
#include <cstdio>
#include <fstream>
#include <sstream>

#include "cli.h"
#include "voxcpm/error.h"
#include "voxcpm/stream.h"
#include "voxcpm/threads.h"
#include "voxcpm/model.h"
#include "voxcpm/wav.h"

namespace {

const char* kUsage =
    "usage: voxcpm-synth --model DIR (--text T | --text-file F) -o OUT.wav [options]\n"
    "\n"
    "  --model DIR          model directory (config.json, model.safetensors|pytorch_model.bin,\n"
    "                       audiovae.pth|audiovae.safetensors, tokenizer.json); default $VOXCPM_MODEL\n"
    "  --text T             text to speak            --text-file F   read the text from a UTF-8 file\n"
    "  -o, --output F       WAV file to write (at the model's sample rate)\n"
    "  --seed N             random seed (default: random, printed)\n"
    "  --timesteps N        flow-matching steps (default 10)\n"
    "  --cfg F              classifier-free guidance value (default 2.0)\n"
    "  --min-len N          minimum patches before the stop head may end (default 2)\n"
    "  --max-len N          maximum generated patches (default 4096)\n"
    "  --retry-badcase | --no-retry-badcase   retry with seed+1 when the audio is too long (default on)\n"
    "  --prompt-wav F --prompt-text T         continuation cloning: a WAV and its exact transcript\n"
    "  --reference-wav F    isolated voice reference (VoxCPM2 only)\n"
    "  --device D           cpu (default), cuda, cuda:N\n"
    "  --dtype D            auto (default), float32, bfloat16\n"
    "  --threads N          CPU threads (default 0: every CPU the process may use)\n"
    "  --format F           s16 (default) or f32 WAV samples\n"
    "  --stream             write the WAV from streamed chunks (no badcase retries) and print\n"
    "                       'chunk <index> <samples> <ms since the call started>' per chunk to stderr\n";

std::string read_text_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) throw voxcpm::Error(path + ": cannot open text file");
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

}  // namespace

int main(int argc, char** argv) {
  using namespace voxcpm;
  cli::Args args(argc, argv, kUsage,
                 {"--model", "--text", "--text-file", "-o", "--output", "--seed", "--timesteps", "--cfg", "--min-len",
                  "--max-len", "--prompt-wav", "--prompt-text", "--reference-wav", "--device", "--dtype", "--threads",
                  "--format"},
                 {"--retry-badcase", "--no-retry-badcase", "--stream"});
  if (!args.positional().empty()) args.fail("unexpected argument '" + args.positional()[0] + "'");
  const char* env_model = std::getenv("VOXCPM_MODEL");
  std::string model_dir = args.value_or("--model", env_model ? env_model : "");
  if (model_dir.empty()) args.fail("no model: pass --model DIR or set VOXCPM_MODEL");
  if (args.value("--text").has_value() == args.value("--text-file").has_value())
    args.fail("give exactly one of --text and --text-file");
  std::string out = args.value_or("-o", args.value_or("--output", ""));
  if (out.empty()) args.fail("no output file: pass -o OUT.wav");
  if (args.flag("--retry-badcase") && args.flag("--no-retry-badcase"))
    args.fail("--retry-badcase and --no-retry-badcase exclude each other");
  std::string format = args.value_or("--format", "s16");
  if (format != "s16" && format != "f32") args.fail("--format must be s16 or f32");

  GenerateOptions opts;
  if (args.value("--seed")) opts.seed = static_cast<uint64_t>(args.integer("--seed", 0, 0, 0xffffffffLL));
  opts.inference_timesteps = args.integer("--timesteps", 10, 1, 1000);
  opts.cfg_value = args.number("--cfg", 2.0, 0.0, 100.0);
  opts.min_len = args.integer("--min-len", 2, 0, 1 << 20);
  opts.max_len = args.integer("--max-len", 4096, 1, 1 << 20);
  opts.retry_badcase = !args.flag("--no-retry-badcase");
  opts.prompt_wav_path = args.value_or("--prompt-wav", "");
  opts.prompt_text = args.value_or("--prompt-text", "");
  if (opts.prompt_wav_path.empty() != opts.prompt_text.empty())
    args.fail("--prompt-wav and --prompt-text must be given together");
  opts.reference_wav_path = args.value_or("--reference-wav", "");
  const long long threads = args.integer("--threads", 0, 0, 1024);

  try {
    use_cpu_threads(static_cast<int>(threads));
    std::string text = args.value("--text") ? *args.value("--text") : read_text_file(*args.value("--text-file"));
    LoadOptions lo;
    lo.device = args.value_or("--device", "cpu");
    lo.dtype = args.value_or("--dtype", "auto");
    auto t0 = std::chrono::steady_clock::now();
    auto model = Model::load(model_dir, lo);
    auto t1 = std::chrono::steady_clock::now();
    const SampleFormat fmt = format == "f32" ? SampleFormat::F32 : SampleFormat::S16;
    GenerateResult r;
    if (args.flag("--stream")) {
      Synthesis syn(model, text, opts, Synthesis::Mode::Streaming);
      WavWriter wav(out, model->sample_rate(), fmt);
      int64_t samples = 0;
      while (auto c = syn.next_chunk()) {
        wav.write(c->samples.data(), c->samples.size());
        samples += static_cast<int64_t>(c->samples.size());
        const double ms = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t1).count();
        std::fprintf(stderr, "chunk %lld %zu %.1f\n", static_cast<long long>(c->index), c->samples.size(), ms);
      }
      wav.close();
      r.waveform.resize(static_cast<size_t>(samples));  // for the summary line only
      r.sample_rate = model->sample_rate();
      r.seed = syn.seed();
      for (const auto& s : syn.segment_results()) r.steps += s.steps;
      r.stopped_by_head = !syn.segment_results().empty() && syn.segment_results().back().stopped_by_head;
    } else {
      r = generate(model, text, opts);
      write_wav(out, r.waveform.data(), r.waveform.size(), r.sample_rate, fmt);
    }
    auto t2 = std::chrono::steady_clock::now();
    const double load_s = std::chrono::duration<double>(t1 - t0).count();
    const double gen_s = std::chrono::duration<double>(t2 - t1).count();
    const double audio_s = static_cast<double>(r.waveform.size()) / r.sample_rate;
    std::fprintf(stderr,
                 "%s (%s): %zu samples @ %lld Hz = %.2f s of audio, %lld patches%s, seed %llu; load %.2f s, "
                 "synthesis %.2f s (RTF %.2f) -> %s\n",
                 model->version_name().c_str(), std::string(c10::toString(model->options().dtype)).c_str(),
                 r.waveform.size(), static_cast<long long>(r.sample_rate), audio_s, static_cast<long long>(r.steps),
                 r.stopped_by_head ? "" : " (length cap reached)", static_cast<unsigned long long>(r.seed), load_s,
                 gen_s, audio_s > 0 ? gen_s / audio_s : 0.0, out.c_str());
  } catch (const std::exception& e) {
    std::fprintf(stderr, "voxcpm-synth: %s\n", e.what());
    return 1;
  }
  return 0;
}
