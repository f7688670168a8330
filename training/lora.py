"""The Joey LoRA: teach a base model to answer as Joey, with loss on Joey's lines only.

Used by both presets: after pre-training for ``mini``, and on its own for a pretrained base
(``joey train --base smollm2 --data ../shared/data``). Every example opens with the system prompt
and sheet that serving uses (model/character.py), then a conversation rendered by the one prompt
builder; each supervised Joey line is rendered as serving asks for it (``ask_ids``), and only its
tokens and end of turn carry loss. Three kinds are mixed:

* windows of Friends scenes reaching up to ``lora_context_turns`` turns back, with every kept
  Joey line in the window supervised (the voice, and answering what was said);
* persona questions answered from the sheet, and memory conversations whose last question asks
  for a fact the user stated earlier (training/chats.py).

Speed on a 2-core CPU decides most of the choices here (measured; see docs/MODEL.md):

* batches are bucketed by length, so padding wastes little compute;
* LoRA can be limited to the top ``lora_layers`` layers: the frozen lower layers then run with
  no autograd graph at all, and the backward pass stops early;
* the frozen base can be held in bf16 (``lora_dtype``), where the CPU has bf16 matrix units.
"""

from __future__ import annotations

import logging
import random
from collections import Counter

import torch

from model.character import Character, default_character
from model.prompt import BOT_NAME, DEFAULT_USER_NAME, Turn, ask_ids, head_ids, note_ids, render_turn, reply_ids
from model.recall import Recall
from training import chats as synthetic
from training import data as corpus
from training import loop
from training.loop import RunLog, Schedule
from training.metrics import Embedder, StyleClassifier, cosines, is_echo, normal_words, style_classifier
from training.train_config import TrainConfig

log = logging.getLogger("joey.train")

# Names that stand in for the person talking to Joey, so the adapter learns to answer anyone
# (a Telegram first name, the web page's name) and not only the six friends.
PARTNER_NAMES = [DEFAULT_USER_NAME, "Alex", "Sam", "Maria", "Tom", "Priya", "Dave", "Emma", "Kim", "Leo"]
Example = tuple[list[int], list[int]]  # (input ids, labels with -100 where there is no loss)


def informative(pairs: list[corpus.JoeyPair], max_repeats: int, drop_echo: bool) -> list[corpus.JoeyPair]:
    """The pairs worth learning a reply from: not a line Joey says more than ``max_repeats`` times
    ("Hey!", "Yeah.", "What?": 9% of his lines), nor one that mostly repeats the line before.

    Trained on them, the adapter learns that a bland line fits after almost anything, and says
    it too often (fewer unique replies, more echoes: docs/MODEL.md). ``max_repeats`` 0 keeps all.
    """
    counts = Counter(normal_words(p.reply) for p in pairs)
    return [p for p in pairs
            if not (max_repeats and counts[normal_words(p.reply)] > max_repeats)
            and not (drop_echo and is_echo(p.context[-1].text, p.reply))]


def related(pairs: list[corpus.JoeyPair], min_relevance: float, embed: Embedder) -> list[corpus.JoeyPair]:
    """The pairs whose reply is about what was just said: sentence-embedding cosine of the line
    said and Joey's reply at least ``min_relevance`` (0 keeps all).

    An adapter answers about as closely as the lines it learns from: trained on every line (mean
    cosine 0.23), it replied at 0.23. Many of Joey's lines ignore the line before (a new topic, a
    callback to earlier in the scene), which teaches that any sitcom line fits. Filtering dialogue
    data by how related a response is to its context follows Akama et al., 2020.
    """
    if min_relevance <= 0 or not pairs:
        return pairs
    cosine = cosines(embed, [p.context[-1].text for p in pairs], [p.reply for p in pairs])
    return [p for p, c in zip(pairs, cosine) if c >= min_relevance]


def in_voice(pairs: list[corpus.JoeyPair], min_style: float, style: StyleClassifier) -> list[corpus.JoeyPair]:
    """The pairs whose reply sounds like Joey rather than like any of the friends: P(joey) from the
    style classifier at least ``min_style`` (0 keeps all).

    Many of Joey's lines could be anyone's ("Okay, what happened?"). Left in, they pull the
    adapter's voice towards the average friend: trained on lines of mean P(joey) 0.512 it
    replied at 0.500, below the real Joey's 0.508 (docs/MODEL.md).
    """
    if min_style <= 0 or not pairs:
        return pairs
    return [p for p, s in zip(pairs, style.p_joey([p.reply for p in pairs])) if s >= min_style]


def on_topic_in_voice(pairs: list[corpus.JoeyPair], cfg: TrainConfig) -> list[corpus.JoeyPair]:
    """``related`` and then ``in_voice``, sharing one sentence embedder (loading it takes seconds)."""
    if cfg.lora_min_relevance <= 0 and cfg.lora_min_style <= 0:
        return pairs
    embed = Embedder()
    kept = related(pairs, cfg.lora_min_relevance, embed)
    if cfg.lora_min_style <= 0:
        return kept
    return in_voice(kept, cfg.lora_min_style, style_classifier(embed, cfg.data, cfg.work))


def chat_example(tok, chat: synthetic.Chat, cfg: TrainConfig, character: Character,
                 note: str | None = None) -> Example | None:
    """As many of the latest turns as fit ``lora_context_tokens`` after the system prompt (which
    :class:`Sheet` puts in front); None when the last supervised line does not fit. ``note``, the
    recalled sheet lines, goes before the last supervised line, where serving puts it."""
    pieces, last = [], last_supervised(chat, -1)
    for i, (turn, supervised) in enumerate(zip(chat.turns, chat.supervised)):
        if supervised:
            ask = (note_ids(tok, note) if i == last else []) + ask_ids(tok, character.name)
            reply = reply_ids(tok, turn.text)[: cfg.lora_reply_tokens]
            newline = render_turn(tok, Turn(turn.speaker, ""), character.name)[-1:] if prompt_is_chatml(tok) else []
            pieces.append((ask + reply + newline, [-100] * len(ask) + reply + [-100] * len(newline)))
        else:
            ids = render_turn(tok, turn, character.name)
            pieces.append((ids, [-100] * len(ids)))
    while pieces and not any(t != -100 for t in pieces[-1][1]):
        pieces.pop()  # nothing after the last supervised line is learnt from
    ids, labels, room = [], [], cfg.lora_context_tokens - len(head_ids(tok, character))
    kept: list[tuple[list[int], list[int]]] = []
    for piece in reversed(pieces):
        if sum(len(p) for p, _ in kept) + len(piece[0]) > room:
            break
        kept.insert(0, piece)
    if not kept or not any(t != -100 for _, y in kept for t in y):
        return None
    for x, y in kept:
        ids += x
        labels += y
    return ids, labels


def prompt_is_chatml(tok) -> bool:
    from model.prompt import PromptFormat, prompt_format

    return prompt_format(tok) is PromptFormat.CHATML


def _key(episode: str, context_last: str, reply: str) -> tuple[str, str, str]:
    return episode, context_last, reply


def scene_chats(scenes: list[corpus.Scene], kept: list[corpus.JoeyPair], cfg: TrainConfig,
                rng: random.Random) -> list[synthetic.Chat]:
    """Windows of Friends scenes, each ending at a kept Joey line and supervising the 1-3 kept
    lines in it, reaching 1..``lora_context_turns`` turns before the first of them."""
    keys = {_key(p.episode, p.context[-1].text, p.reply) for p in kept}
    out = []
    for scene in scenes:
        if scene.show != "Friends" or scene.held_out:
            continue
        turns = scene.turns
        idx = [i for i in range(1, len(turns)) if turns[i].speaker == corpus.BOT_SPEAKER
               and _key(scene.episode, turns[i - 1].text, turns[i].text) in keys]
        while idx:
            take = rng.randint(1, 3)
            group, idx = idx[:take], idx[take:]
            start = max(0, group[0] - rng.randint(1, cfg.lora_context_turns))
            window = list(turns[start : group[-1] + 1])
            partner = window[group[-1] - start - 1].speaker
            if partner != BOT_NAME and rng.random() < 0.3:
                new = rng.choice(PARTNER_NAMES)
                window = [Turn(new if t.speaker == partner else t.speaker, t.text) for t in window]
            out.append(synthetic.Chat(window, [start + j in group for j in range(len(window))]))
    return out


def last_supervised(chat: synthetic.Chat, default: int) -> int:
    return max((i for i, s in enumerate(chat.supervised) if s), default=default)


def last_said(chat: synthetic.Chat, bot_name: str) -> str:
    """What was said last before the chat's last supervised line: the text serving recalls for."""
    last = last_supervised(chat, len(chat.turns))
    return next((t.text for t in reversed(chat.turns[:last]) if t.speaker != bot_name), "")


def joey_examples(tok, chats: list[synthetic.Chat], cfg: TrainConfig, character: Character) -> list[Example]:
    notes = [None] * len(chats)
    if cfg.lora_recall:
        notes = Recall(character, cfg.lora_recall).notes([last_said(c, character.name) for c in chats])
    return [e for e in (chat_example(tok, c, cfg, character, n) for c, n in zip(chats, notes)) if e is not None]


def training_chats(scenes: list[corpus.Scene], kept: list[corpus.JoeyPair], cfg: TrainConfig,
                   rng: random.Random) -> list[synthetic.Chat]:
    """The mixture: scene windows, persona and memory conversations, shuffled together."""
    chats = scene_chats(scenes, kept, cfg, rng)
    persona = synthetic.load_persona()
    exchanges = [(p.context[-1].text, p.reply) for p in kept if len(p.reply) < 120]
    chats += [synthetic.persona_chat(rng, persona, exchanges) for _ in range(cfg.lora_persona_chats)]
    chats += [synthetic.memory_chat(rng, persona, exchanges) for _ in range(cfg.lora_memory_chats)]
    rng.shuffle(chats)
    return chats


def length_batches(examples: list[Example], batch: int, rng: random.Random) -> list[list[Example]]:
    """Batches of similar length, in random order: little padding, still a shuffled epoch."""
    order = sorted(rng.sample(examples, len(examples)), key=lambda e: len(e[0]))
    batches = [order[i : i + batch] for i in range(0, len(order), batch)]
    rng.shuffle(batches)
    return batches


def collate(batch: list[Example], pad_id: int | None):
    pad_id = pad_id or 0  # padded positions are masked out of attention and loss anyway
    width = max(len(ids) for ids, _ in batch)
    ids = torch.full((len(batch), width), pad_id)
    labels = torch.full((len(batch), width), -100)
    mask = torch.zeros((len(batch), width), dtype=torch.long)
    for i, (x, y) in enumerate(batch):
        ids[i, : len(x)], labels[i, : len(y)], mask[i, : len(x)] = torch.tensor(x), torch.tensor(y), 1
    return ids, labels, mask


class Sheet:
    """The system prompt every example opens with, run once per batch instead of once per row.

    Its keys and values are computed without a graph by the current weights and repeated over
    the batch, so the forward pass is exact; only the gradient that would flow back through the
    sheet's own positions is left out. Examples are then 120-250 tokens instead of 550-700,
    which makes a step about three times cheaper on this CPU.
    """

    def __init__(self, tok, character: Character):
        self.ids = torch.tensor([head_ids(tok, character)])

    def loss(self, model, ids: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """The loss of a batch from :func:`collate`, after the sheet."""
        with torch.no_grad():
            cache = model(input_ids=self.ids, use_cache=True).past_key_values
        cache.batch_repeat_interleave(len(ids))
        full_mask = torch.cat([torch.ones(len(ids), self.ids.shape[1], dtype=mask.dtype), mask], dim=1)
        return model(input_ids=ids, attention_mask=full_mask, past_key_values=cache, labels=labels).loss


def lora_model(cfg: TrainConfig, base):
    from peft import LoraConfig, get_peft_model

    layers = base.config.num_hidden_layers
    top = range(max(0, layers - cfg.lora_layers), layers) if cfg.lora_layers else None
    lora_cfg = LoraConfig(
        r=cfg.lora_r, lora_alpha=cfg.lora_alpha, lora_dropout=0.05, task_type="CAUSAL_LM",
        target_modules=["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"],
        layers_to_transform=list(top) if top is not None else None,
    )
    if cfg.lora_dtype == "bf16":
        base = base.to(torch.bfloat16)
    model = get_peft_model(base, lora_cfg)
    for p in model.parameters():  # adapters train in fp32 whatever the frozen base holds
        if p.requires_grad:
            p.data = p.data.float()
    return model


def train_lora(cfg: TrainConfig, tok, base, scenes: list[corpus.Scene], run_log: RunLog):
    rng = random.Random(cfg.seed)
    character = default_character()
    pairs = list(corpus.joey_pairs(scenes, held_out=False))
    kept = on_topic_in_voice(informative(pairs, cfg.lora_max_repeats, cfg.lora_drop_echo), cfg)
    train = joey_examples(tok, training_chats(scenes, kept, cfg, rng), cfg, character)
    # Validation keeps every held-out line, answered from its last 1..3 turns after the sheet,
    # so its loss stays comparable between recipes.
    val_chats = [synthetic.Chat(p.context[-rng.randint(1, 3):] + [Turn(BOT_NAME, p.reply)], [False] * 3 + [True])
                 for p in corpus.joey_pairs(scenes, held_out=True)]
    val = joey_examples(tok, [synthetic.Chat(c.turns, c.supervised[-len(c.turns):]) for c in val_chats], cfg, character)
    log.info("Joey pairs: %d kept of %d (bland, echoing, unrelated or out-of-voice lines left out); examples: train %d "
             "(%d tokens, %d supervised), validation %d", len(kept), len(pairs), len(train), sum(len(x) for x, _ in train),
             sum(sum(t != -100 for t in y) for _, y in train), len(val))
    if not train or not val:
        raise ValueError("no Joey lines to train on: check --data")
    model = lora_model(cfg, base)
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    log.info("LoRA: %.2fM trainable parameters, base in %s", trainable / 1e6, cfg.lora_dtype)
    opt = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=cfg.lora_lr, weight_decay=0.0)
    val_batches = [collate(b, tok.pad_token_id) for b in length_batches(val[:64], cfg.batch, random.Random(1))]
    sheet, epoch = Sheet(tok, character), []

    def next_batch(_step: int):
        if not epoch:
            epoch.extend(length_batches(train, cfg.batch, rng))
        return collate(epoch.pop(), tok.pad_token_id)

    loop.train(model, opt, Schedule("lora", cfg.lora_steps, cfg.lora_lr, cfg.lora_warmup, cfg.eval_every), next_batch,
          loss_of=lambda b: sheet.loss(model, *b), tokens_of=lambda b: int(b[2].sum()), val=val_batches, run_log=run_log)
    return model
