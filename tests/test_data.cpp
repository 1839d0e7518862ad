// datasets/: vocabularies, tokenizers, encodings, readers, tag schemes and batching.
#include <fstream>

#include <rnnkit/data/batching.h>
#include <rnnkit/data/conll.h>
#include <rnnkit/data/corpus.h>
#include <rnnkit/data/labelled.h>
#include <rnnkit/data/text.h>
#include <rnnkit/data/vocab.h>

#include "test_util.h"

using namespace rnnkit::data;

namespace {

std::string temp_file(const std::string& name, const std::string& content) {
  return rnnkit_test::write_file(::testing::TempDir(), "rnnkit_" + name, content);
}

template <class F>
void expect_data_error(F&& f, std::initializer_list<std::string> parts) {
  rnnkit_test::expect_message<DataError>(std::forward<F>(f), parts);
}

}  // namespace

TEST(Vocab, TopKByFrequencyWithDeterministicTies) {
  const std::vector<std::string> toks{"b", "a", "c", "a", "b", "d", "a", "e"};
  const Vocab v = Vocab::build(toks, /*max_size=*/6);
  ASSERT_EQ(v.size(), 6);  // 4 specials + a (3) + b (2)
  EXPECT_EQ(v.token(4), "a");
  EXPECT_EQ(v.token(5), "b");
  const Vocab all = Vocab::build(toks);
  EXPECT_EQ(all.decode({6, 7, 8}), (std::vector<std::string>{"c", "d", "e"}));  // ties: by bytes
  const Vocab min2 = Vocab::build(toks, 0, 2);
  EXPECT_EQ(min2.size(), 6);
  EXPECT_EQ(v.id("zzz"), Vocab::kUnk);
  EXPECT_EQ(v.encode({"a", "zzz", "<eos>"}), (std::vector<int64_t>{4, Vocab::kUnk, Vocab::kEos}));
  EXPECT_EQ(v.token(Vocab::kPad), "<pad>");
  EXPECT_EQ(v.token(Vocab::kBos), "<bos>");
}

TEST(Vocab, SavesAndLoadsAsTextIncludingWhitespaceCharacters) {
  const Vocab v = Vocab::build(std::vector<std::string>{"\n", " ", "a", "\\", "\t", "é"});
  const std::string path = temp_file("vocab.txt", "");
  v.save(path);
  EXPECT_TRUE(Vocab::load(path) == v);
  expect_data_error([&] { Vocab::load(temp_file("bad_vocab.txt", "hello\n")); },
                    {"bad_vocab.txt:1", "expected the header"});
  expect_data_error(
      [&] { Vocab::from_string("#rnnkit-vocab v1\n<pad>\n<unk>\n<bos>\n<eos>\nx\nx\n", "v"); },
      {"v:7", "appears twice"});
}

TEST(Text, CharacterTokensAreCodePoints) {
  EXPECT_EQ(CharTokenizer()("héllo €"),
            (std::vector<std::string>{"h", "é", "l", "l", "o", " ", "€"}));
  WordTokenizer w{true, true};
  EXPECT_EQ(w("The ÉCOLE opened in 1987 ."),
            (std::vector<std::string>{"the", "école", "opened", "in", "0000", "."}));
  EXPECT_EQ(WordTokenizer()("  Keep   Case  "), (std::vector<std::string>{"Keep", "Case"}));
}

TEST(Text, InvalidUtf8NamesFileLineAndByte) {
  const std::string path = temp_file("latin.txt", "fine line\ncaf\xe9 au lait\n");
  expect_data_error([&] { read_word_corpus(path); },
                    {"latin.txt:2", "invalid UTF-8 at byte 4", "latin1"});
  // Overlong encodings and surrogates are invalid too.
  EXPECT_EQ(find_invalid_utf8("\xc0\xaf"), 0);
  EXPECT_EQ(find_invalid_utf8("ok\xed\xa0\x80"), 2);
  EXPECT_EQ(find_invalid_utf8("ok \xe2\x82\xac"), -1);
}

TEST(Text, Latin1AndCp1252AreDecoded) {
  const std::string path = temp_file("cp.txt", "it\x92s caf\xe9\r\n");
  EXPECT_EQ(read_word_corpus(path, {}, Encoding::kCp1252),
            (std::vector<std::string>{"it’s", "café", "<eos>"}));
  EXPECT_EQ(read_word_corpus(path, {}, Encoding::kLatin1)[1], "café");
  EXPECT_EQ(parse_encoding("windows-1252"), Encoding::kCp1252);
  EXPECT_THROW(parse_encoding("ebcdic"), std::invalid_argument);
}

TEST(Text, MissingAndEmptyFiles) {
  expect_data_error([] { read_char_corpus("/nonexistent/rnnkit.txt"); },
                    {"/nonexistent/rnnkit.txt", "cannot open file"});
  expect_data_error([&] { read_char_corpus(temp_file("empty.txt", "")); },
                    {"empty.txt", "the file is empty"});
  expect_data_error([&] { read_word_corpus(temp_file("empty2.txt", "")); }, {"empty"});
  EXPECT_EQ(read_char_corpus(temp_file("chars.txt", "ab\nc\n")).size(), 5u);
}

TEST(Conll, DocstartBlankLinesCrlfAndTabs) {
  const std::string path =
      temp_file("a.conll",
                "-DOCSTART- -X- O O\r\n\r\nEU NNP I-ORG\r\nrejects VBZ O\r\n   \r\n"
                "German JJ I-MISC\r\n\t\n\nPeter NNP I-PER\n");
  const auto s = read_conll(path);
  ASSERT_EQ(s.size(), 3u);
  EXPECT_EQ(s[0].tokens, (std::vector<std::string>{"EU", "rejects"}));
  EXPECT_EQ(s[0].tags, (std::vector<std::string>{"I-ORG", "O"}));
  EXPECT_EQ(s[0].line, 3u);
  EXPECT_EQ(s[2].tokens[0], "Peter");

  const auto tabs = read_conll(temp_file("tabs.conll", "New York\tB-LOC\nis\tO\n"));
  EXPECT_EQ(tabs[0].tokens[0], "New York");
  const auto cols = read_conll(temp_file("cols.conll", "x POS B-X\n"), {0, 1});
  EXPECT_EQ(cols[0].tags[0], "POS");
}

TEST(Conll, BadInput) {
  expect_data_error([&] { read_conll(temp_file("short.conll", "EU B-ORG\nrejects\n")); },
                    {"short.conll:2", "expected at least 2 columns", "got 1"});
  expect_data_error([&] { read_conll(temp_file("empty.conll", "")); }, {"the file is empty"});
  // A line with more (or fewer) columns than the file's others: "New York" would lose "York".
  expect_data_error(
      [&] { read_conll(temp_file("ragged.conll", "EU B-ORG\n\nin O\nNew York I-LOC\n")); },
      {"ragged.conll:4", "expected 2 columns, as line 1 has, got 3", "New York I-LOC"});
  expect_data_error([&] { read_conll(temp_file("fewer.conll", "EU NNP B-ORG\nrejects O\n")); },
                    {"fewer.conll:2", "expected 3 columns, as line 1 has, got 2"});
  const auto s = read_conll(temp_file("bad_tag.conll", "a O\nb B-PER\nc X-PER\n"));
  expect_data_error([&] { check_tags(s, TagScheme::kIOB2, "bad_tag.conll"); },
                    {"bad_tag.conll:3", "'X-PER'", "iob2"});
  expect_data_error([&] { check_tags(s, TagScheme::kIO, "f"); }, {"f:2", "'B-PER'", "io"});
}

TEST(TagSchemes, Iob1EdgeCasesAndConversions) {
  // IOB1: I- starts an entity; B- only splits two adjacent entities of the same type.
  const std::vector<std::string> iob1{"I-PER", "I-PER", "B-PER", "O", "I-LOC", "I-ORG", "I-ORG"};
  const std::vector<Span> spans{{0, 2, "PER"}, {2, 3, "PER"}, {4, 5, "LOC"}, {5, 7, "ORG"}};
  EXPECT_EQ(tags_to_spans(iob1, TagScheme::kIOB1), spans);
  EXPECT_EQ(convert_tags(iob1, TagScheme::kIOB1, TagScheme::kIOB2),
            (std::vector<std::string>{"B-PER", "I-PER", "B-PER", "O", "B-LOC", "B-ORG", "I-ORG"}));
  EXPECT_EQ(convert_tags(iob1, TagScheme::kIOB1, TagScheme::kIOBES),
            (std::vector<std::string>{"B-PER", "E-PER", "S-PER", "O", "S-LOC", "B-ORG", "E-ORG"}));
  EXPECT_EQ(convert_tags(iob1, TagScheme::kIOB1, TagScheme::kIO),
            (std::vector<std::string>{"I-PER", "I-PER", "I-PER", "O", "I-LOC", "I-ORG", "I-ORG"}));
  for (auto to : {TagScheme::kIOB2, TagScheme::kIOBES}) {
    EXPECT_EQ(convert_tags(convert_tags(iob1, TagScheme::kIOB1, to), to, TagScheme::kIOB1), iob1);
  }
  // conlleval's lenient reading: an I- after O, or after another type, starts an entity.
  EXPECT_EQ(tags_to_spans({"O", "I-PER", "B-LOC", "I-PER"}, TagScheme::kIOB2),
            (std::vector<Span>{{1, 2, "PER"}, {2, 3, "LOC"}, {3, 4, "PER"}}));
  EXPECT_EQ(detect_tag_scheme({{{"a", "b", "c"}, {"I-PER", "B-PER", "O"}, 1, {}}}),
            TagScheme::kIOB1);
  EXPECT_EQ(detect_tag_scheme({{{"a", "b"}, {"B-PER", "I-PER"}, 1, {}}}), TagScheme::kIOB2);
  EXPECT_EQ(detect_tag_scheme({{{"a"}, {"S-PER"}, 1, {}}}), TagScheme::kIOBES);
  EXPECT_EQ(parse_tag_scheme("bio"), TagScheme::kIOB2);
}

TEST(Labelled, ThreeLayouts) {
  const auto tsv = read_tsv(temp_file("a.tsv", "pos\tgood film\nneg\tbad one\n"));
  ASSERT_EQ(tsv.size(), 2u);
  EXPECT_EQ(tsv[1].label, "neg");
  EXPECT_NE(tsv[1].origin.find("a.tsv:2"), std::string::npos);
  const auto uci = read_tsv(temp_file("uci.txt", "Great phone.\t1\n"), /*label_last=*/true);
  EXPECT_EQ(uci[0].label, "1");
  EXPECT_EQ(uci[0].text, "Great phone.");
  const auto stsa = read_stsa(temp_file("s.txt", "1 a fine , funny film\n0 dull\n"));
  EXPECT_EQ(stsa[0].text, "a fine , funny film");
  const auto files = read_class_files(
      {{"pos", temp_file("x.pos", "nice\n")}, {"neg", temp_file("x.neg", "awful\nmeh\n")}});
  EXPECT_EQ(files.size(), 3u);
  EXPECT_EQ(files[2].label, "neg");
  expect_data_error([&] { read_tsv(temp_file("nolabel.tsv", "pos\tok\n\tno label\n")); },
                    {"nolabel.tsv:2", "no label"});
  expect_data_error([&] { read_tsv(temp_file("notab.tsv", "pos\tok\njust text\n")); },
                    {"notab.tsv:2", "label<TAB>text"});
  expect_data_error([&] { read_stsa(temp_file("s2.txt", "1 good\n0\n")); }, {"s2.txt:2"});
  expect_data_error([&] { read_tsv(temp_file("e.tsv", "")); }, {"e.tsv", "empty"});
}

TEST(Batching, PaddingBucketingShufflingSharding) {
  const std::vector<std::vector<int64_t>> seqs{{5, 6, 7}, {8}, {9, 10}};
  const auto p = pad_sequences(seqs, {0, 1, 2}, /*pad_id=*/0);
  EXPECT_TRUE(p.tokens.equal(torch::tensor({5, 6, 7, 8, 0, 0, 9, 10, 0}).view({3, 3})));
  EXPECT_TRUE(p.lengths.equal(torch::tensor({3, 1, 2})));
  EXPECT_THROW(pad_sequences({{}}, {0}), c10::Error);

  std::vector<size_t> lengths;
  for (size_t i = 0; i < 1000; ++i) lengths.push_back(1 + (i * 7919) % 50);
  BatchPlanOptions o;
  o.batch_size = 10;
  o.seed = 3;
  const auto a = plan_batches(lengths, o, 0);
  EXPECT_EQ(a, plan_batches(lengths, o, 0)) << "same seed and epoch, same plan";
  EXPECT_NE(a, plan_batches(lengths, o, 1)) << "each epoch reshuffles";
  std::vector<size_t> seen;
  for (const auto& b : a) seen.insert(seen.end(), b.begin(), b.end());
  std::sort(seen.begin(), seen.end());
  EXPECT_EQ(seen.size(), 1000u);
  EXPECT_EQ(std::unique(seen.begin(), seen.end()), seen.end()) << "every example exactly once";
  auto padding = [&](const std::vector<std::vector<size_t>>& plan) {
    size_t pad = 0;
    for (const auto& b : plan) {
      size_t mx = 0;
      for (auto i : b) mx = std::max(mx, lengths[i]);
      for (auto i : b) pad += mx - lengths[i];
    }
    return pad;
  };
  BatchPlanOptions flat = o;
  flat.bucket_pool = 0;
  EXPECT_LT(padding(a) * 4, padding(plan_batches(lengths, flat, 0))) << "bucketing pads less";
  BatchPlanOptions r0 = o, r1 = o;
  r0.world = r1.world = 2;
  r1.rank = 1;
  // Sharded as DistributedSampler strides: every rank has as many batches as the whole plan,
  // and its share of batch k is elements rank, rank + 2, ... of a[k].
  const auto p0 = plan_batches(lengths, r0, 0), p1 = plan_batches(lengths, r1, 0);
  ASSERT_EQ(p0.size(), a.size());
  ASSERT_EQ(p1.size(), a.size());
  for (size_t k = 0; k < a.size(); ++k) {
    std::vector<size_t> e0, e1;
    for (size_t i = 0; i < a[k].size(); ++i) (i % 2 ? e1 : e0).push_back(a[k][i]);
    EXPECT_EQ(p0[k], e0);
    EXPECT_EQ(p1[k], e1);
  }
  BatchPlanOptions r3 =
      o;  // 1000 examples, batches of 32: the last holds 8, so rank 9 of 10 gets none
  r3.batch_size = 32;
  r3.world = 10;
  r3.rank = 9;
  r3.shuffle = false;
  r3.bucket_pool = 0;
  EXPECT_TRUE(plan_batches(lengths, r3, 0).back().empty());
}

TEST(Batching, InOrderBatchesAndWordDropout) {
  EXPECT_EQ(in_order_batches(5, 2), (std::vector<std::vector<size_t>>{{0, 1}, {2, 3}, {4}}));
  EXPECT_TRUE(in_order_batches(0, 4).empty());
  // ids 0 (padding) and 1 (<unk>) stay; every other id becomes 1 at p close to 1, none at p = 0.
  const auto tokens = torch::tensor({5, 6, 1, 0, 7, 0}, torch::kLong).view({2, 3});
  EXPECT_TRUE(torch::equal(drop_words(tokens, 0.0, 1), tokens));
  torch::manual_seed(0);
  const auto all = drop_words(tokens, 0.999999, 1);
  EXPECT_TRUE(torch::equal(all, torch::tensor({1, 1, 1, 0, 1, 0}, torch::kLong).view({2, 3})));
  // At p = 0.5 over many ids about half are dropped, and only ever to <unk>.
  const auto many = torch::full({100, 100}, 9, torch::kLong);
  const auto half = drop_words(many, 0.5, 1);
  EXPECT_TRUE(((half == 1) | (half == 9)).all().item<bool>());
  EXPECT_NEAR((half == 1).to(torch::kDouble).mean().item<double>(), 0.5, 0.03);
}

TEST(Batching, StreamBatcherCutsParallelStreams) {
  std::vector<int64_t> ids(23);
  std::iota(ids.begin(), ids.end(), 0);
  StreamBatcher s(ids, 2);  // streams 0..10 and 11..21; token 22 dropped
  EXPECT_EQ(s.steps_per_stream(), 11);
  EXPECT_EQ(s.num_windows(4), 3);  // 10 predictions: 4 + 4 + 2
  auto [x0, y0] = s.window(0, 4);
  EXPECT_TRUE(x0.equal(torch::tensor({0, 11, 1, 12, 2, 13, 3, 14}).view({4, 2})));
  EXPECT_TRUE(y0.equal(torch::tensor({1, 12, 2, 13, 3, 14, 4, 15}).view({4, 2})));
  auto [x2, y2] = s.window(2, 4);
  EXPECT_EQ(x2.size(0), 2);
  EXPECT_EQ(y2[1][1].item<int64_t>(), 21);
  EXPECT_THROW(StreamBatcher(std::vector<int64_t>{1, 2, 3}, 2), c10::Error);
}

TEST(Corpus, WordsGetEosCharactersKeepNewlines) {
  const std::string path = temp_file("c.txt", "the cat\n\nsat\n");
  EXPECT_EQ(read_word_corpus(path),
            (std::vector<std::string>{"the", "cat", "<eos>", "<eos>", "sat", "<eos>"}));
  EXPECT_EQ(read_char_corpus(path).size(), 13u);
  EXPECT_EQ(read_char_corpus(path)[7], "\n");
}

TEST(Text, UnicodeCaseDigitsAndNfcThroughUtf8proc) {
  // Beyond ASCII and Latin-1: Greek, Cyrillic, Polish.
  EXPECT_EQ(to_lower("\u0391\u0398\u0397\u039d\u0391 \u0141\u00f3d\u017a "
                     "\u041f\u0420\u0418\u0412\u0415\u0422 ABC"),
            "\u03b1\u03b8\u03b7\u03bd\u03b1 \u0142\u00f3d\u017a "
            "\u043f\u0440\u0438\u0432\u0435\u0442 abc");
  // Arabic-Indic and full-width digits are digits too.
  EXPECT_EQ(normalize_digits("\u0663\u0664 and \uff13, 1999"), "00 and 0, 0000");
  EXPECT_EQ(nfc("Cafe\u0301"), "Caf\u00e9");
  EXPECT_EQ(nfc("plain ascii"), "plain ascii");
  const auto c = case_counts("\u0141\u00f3d\u017a7");
  EXPECT_TRUE(c.first_upper);
  EXPECT_EQ(c.upper, 1);
  EXPECT_EQ(c.lower, 3);
  EXPECT_EQ(c.digits, 1);
  EXPECT_EQ(c.total, 5);
  EXPECT_EQ((WordTokenizer{true, true}.normalize("\u0141\u00d3D\u0179-2024")),
            "\u0142\u00f3d\u017a-0000");
  // The readers return NFC: a decomposed file reads as its composed form.
  const auto dir = ::testing::TempDir();
  std::ofstream(dir + "/nfd.txt") << "Cafe\u0301\n";
  EXPECT_EQ(read_text(dir + "/nfd.txt"), "Caf\u00e9\n");
}

TEST(SSTTrees, RootsPhrasesLabelsAndEscapes) {
  // Two binarized trees; the first repeats the phrase "good" and has escapes and a U+00A0 token.
  const std::string path = temp_file("trees.txt",
                                     "(3 (2 -LRB-) (3 (3 (3 good) (2 2\u00a01\\/2)) (2 -RRB-)))\n"
                                     "\n"
                                     "(1 (3 good) (0 (2 not) (1 bad\\*)))\n");
  const auto roots = read_sst_trees(path);
  ASSERT_EQ(roots.size(), 2u);
  EXPECT_EQ(roots[0].text, "( good 2\u00a01/2 )") << "escapes undone, U+00A0 kept inside a token";
  EXPECT_EQ(roots[0].label, "1");
  EXPECT_EQ(roots[1].text, "good not bad*");
  EXPECT_EQ(roots[1].label, "0");
  EXPECT_EQ(roots[1].origin, path + ":3");

  SSTOptions phrases;
  phrases.phrases = true;
  std::vector<std::string> texts;
  for (const auto& p : read_sst_trees(path, phrases)) texts.push_back(p.label + " " + p.text);
  // Neutral nodes (2) dropped; "good" (twice) kept once; every other non-neutral node, children
  // before their parent.
  const std::vector<std::string> expected{
      "1 good", "1 good 2\u00a01/2", "1 good 2\u00a01/2 )", "1 ( good 2\u00a01/2 )",
      "0 bad*", "0 not bad*",        "0 good not bad*"};
  EXPECT_EQ(texts, expected);

  SSTOptions fine;
  fine.binary = false;
  const auto five = read_sst_trees(path, fine);
  EXPECT_EQ(five[0].label, "3");
  EXPECT_EQ(five[1].label, "1");
  fine.phrases = true;
  EXPECT_EQ(read_sst_trees(path, fine).size(), 11u) << "every distinct phrase, neutral ones too";
}

TEST(SSTTrees, MalformedTreesNameLineAndColumn) {
  expect_data_error([&] { read_sst_trees(temp_file("t1.txt", "(3 (2 a) (2 b)\n")); },
                    {"t1.txt:1", "column 15", "expected ')'"});
  expect_data_error([&] { read_sst_trees(temp_file("t2.txt", "(2 a)\n(7 (2 a) (2 b))\n")); },
                    {"t2.txt:2", "column 2", "label from 0 to 4"});
  expect_data_error([&] { read_sst_trees(temp_file("t3.txt", "(2 a) (2 b)\n")); },
                    {"t3.txt:1", "column 7", "end of the line"});
  expect_data_error([&] { read_sst_trees(temp_file("t4.txt", "(2 ())\n")); },
                    {"t4.txt:1", "column 5"});
  expect_data_error([&] { read_sst_trees(temp_file("t5.txt", "\n\n")); }, {"t5.txt", "empty"});
  // A damaged line nested 100,000 deep is an error, not a stack overflow.
  std::string deep;
  for (int i = 0; i < 100000; ++i) deep += "(2 ";
  expect_data_error([&] { read_sst_trees(temp_file("t7.txt", deep + "\n")); },
                    {"t7.txt:1", "deeper than 1000"});
  expect_data_error([&] { read_sst_trees(temp_file("t6.txt", "(2 (2 a) (2 b))\n")); },
                    {"t6.txt", "non-neutral"});
}

TEST(SSTTrees, TheStsaFilesAreTheTrainRoots) {
  // SOURCES.md §12: stsa.binary.train is the non-neutral train roots, lowercased, escapes kept.
  // The data root as the configs see it (scripts/fetch_data.sh --from ../shared/datasets fills it).
  const char* env = std::getenv("RNNKIT_DATA");
  const std::string dir =
      (env && *env ? std::string(env) : std::string(RNNKIT_SOURCE_DIR) + "/data") + "/";
  if (!std::filesystem::exists(dir + "sst-trees/train.txt") ||
      !std::filesystem::exists(dir + "sst2/stsa.binary.train")) {
    GTEST_SKIP() << "the SST trees and stsa files are not in " << dir;
  }
  const auto roots = read_sst_trees(dir + "sst-trees/train.txt");
  const auto stsa = read_stsa(dir + "sst2/stsa.binary.train");
  ASSERT_EQ(roots.size(), stsa.size());
  auto escaped_lower = [](std::string t) {
    std::string out;
    for (const auto& w : WordTokenizer{true, false}(t)) {
      std::string e = w == "(" ? "-lrb-" : w == ")" ? "-rrb-" : w;
      std::string esc;
      for (char ch : e)
        esc += (ch == '/' || ch == '*') ? std::string("\\") + ch : std::string(1, ch);
      out += (out.empty() ? "" : " ") + esc;
    }
    return out;
  };
  // The same sentences and labels, in another order.
  std::vector<std::string> a, b;
  for (const auto& r : roots) a.push_back(r.label + " " + escaped_lower(r.text));
  for (const auto& r : stsa) b.push_back(r.label + " " + r.text);
  std::sort(a.begin(), a.end());
  std::sort(b.begin(), b.end());
  size_t same = 0;
  for (size_t i = 0; i < a.size(); ++i) same += a[i] == b[i];
  EXPECT_EQ(same, a.size());
  SSTOptions phrases;
  phrases.phrases = true;
  EXPECT_EQ(read_sst_trees(dir + "sst-trees/train.txt", phrases).size(), 77616u)
      << "SOURCES.md: 77,616 distinct non-neutral phrases";
}
