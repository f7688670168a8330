"""Synthetic conversations that teach the adapter to use its sheet and the conversation.

Two kinds, both built from templates with a fixed seed, in Joey's voice:

* persona: someone asks Joey about his life, answered from ``characters/joey.train.json`` (the
  questions there are phrased apart from the evaluation's, which never enter training);
* memory: the user states facts about themselves, the talk goes on for 1-4 exchanges, then the
  user asks for one fact, and Joey's answer holds it.

The filler exchanges of a memory conversation are persona questions or real Friends exchanges
(a line said to Joey and his answer), so the voice stays his while the model learns to look back.
"""

from __future__ import annotations

import json
import random
import re
from dataclasses import dataclass
from pathlib import Path

from model.character import ROOT
from model.prompt import DEFAULT_USER_NAME, Turn

TRAIN_QA = ROOT / "characters" / "joey.train.json"
BOT = "Joey"
USER_NAMES = [DEFAULT_USER_NAME] * 4 + ["Alex", "Sam", "Maria", "Tom", "Priya", "Dave", "Emma", "Kim", "Leo", "Nina",
                                        "Carlos", "Yuki", "Ben", "Zoe", "Omar", "Lily", "Jack", "Ana"]


@dataclass
class Chat:
    turns: list[Turn]
    supervised: list[bool]  # per turn: does Joey's line here carry loss


@dataclass(frozen=True)
class Fact:
    statements: tuple[str, ...]  # what the user says; {v} is the value, {k} the kind
    questions: tuple[str, ...]  # how the user asks for it later
    answers: tuple[str, ...]  # Joey's recall, always holding {v}
    acks: tuple[str, ...]  # Joey's answer right after hearing it
    values: tuple[str, ...]
    kinds: tuple[str, ...] = ("",)


_FIRST = ("Aiden", "Bella", "Caleb", "Diana", "Eli", "Fiona", "Gus", "Helen", "Ivan", "Jade", "Kevin", "Lena",
          "Mike", "Nora", "Owen", "Paula", "Quinn", "Rosa", "Simon", "Tara", "Umar", "Vera", "Wes", "Xena", "Yara",
          "Zack", "Brad", "Chloe", "Derek", "Erin", "Frank", "Gina Lu", "Hugo", "Iris", "Jonah", "Kara", "Liam", "Mona",
          "Nate", "Opal", "Pete", "Ruby", "Sean", "Tess", "Vince", "Wendy", "Amir", "Beth", "Cody", "Dora")
_PETS = ("Max", "Luna", "Buddy", "Coco", "Bear", "Mittens", "Ziggy", "Noodle", "Pepper", "Waffles", "Bubbles",
         "Tiger", "Oreo", "Muffin", "Duke", "Daisy", "Shadow", "Pretzel", "Gizmo", "Toby", "Fluffy", "Chester")
FACTS = [
    Fact(("Hi Joey, I'm {v}.", "Hey! My name's {v}.", "I'm {v}, nice to meet you.", "Call me {v}.", "Hey Joey, {v} here.",
          "Hello, my name is {v}."),
         ("What's my name?", "Do you remember my name?", "Who am I?", "What did I say my name was?", "Say my name!",
          "You forgot my name already, didn't you?", "Tell me my name.", "Quick, what's my name?",
          "Bet you can't remember my name.", "What do people call me?", "And me, who am I again?"),
         ("You're {v}! How could I forget?", "{v}! I never forget a pretty name.", "Come on, you're {v}!",
          "{v}, right? Joey remembers."),
         ("Hey {v}! How you doin'?", "{v}! Nice to meet you. I'm Joey.", "Hi {v}! Come on in."), _FIRST),
    Fact(("I just moved here from {v}.", "I grew up in {v}.", "I'm from {v}, originally.", "I came here from {v} last week."),
         ("Where am I from?", "Where did I grow up?", "Do you remember where I came from?", "Which city did I move from?"),
         ("{v}! You told me, see?", "You're from {v}.", "{v}, right? I remember."),
         ("{v}? Whoa, welcome to New York!", "{v}! Never been. Is the food good?", "Wow, {v}! That's far."),
         ("Miami", "Dallas", "Portland", "Phoenix", "Atlanta", "Detroit", "London", "Toronto", "Philadelphia", "Houston",
          "San Diego", "Nashville", "Dublin", "Sydney", "Montreal", "Pittsburgh", "Cleveland", "New Orleans")),
    Fact(("I'm a {v}.", "I work as a {v}.", "I'm a {v}, it's a lot of work.", "My job? I'm a {v}."),
         ("What do I do for a living?", "What's my job?", "Remember what I do?", "What did I say I work as?"),
         ("You're a {v}!", "You're a {v}. I listen, see?", "A {v}! You told me."),
         ("A {v}? Cool! I'm an actor.", "Whoa, a {v}! That's a real job.", "A {v}! Do you get free stuff?"),
         ("plumber", "pilot", "doctor", "waiter", "architect", "banker", "photographer", "journalist", "mechanic",
          "librarian", "baker", "programmer", "vet", "police officer", "carpenter", "accountant", "taxi driver")),
    Fact(("My {k} is called {v}.", "I have a {k} named {v}.", "My {k}'s name is {v}.", "I got a {k}, {v}."),
         ("What's my {k}'s name?", "Do you remember my {k}?", "What did I call my {k}?", "What's my {k} called again?"),
         ("{v}! Your {k} is {v}.", "Your {k}? {v}!", "{v}! Great name for a {k}."),
         ("A {k} named {v}? I love it!", "{v}! I had a duck once.", "Aw, {v}! Can I meet {v}?"),
         _PETS, ("dog", "cat", "rabbit", "fish", "parakeet", "snake", "puppy", "kitten", "goldfish", "lizard")),
    Fact(("My {k} is called {v}.", "I have a {k} named {v}.", "My {k} {v} is visiting.", "My {k}'s name is {v}."),
         ("What's my {k}'s name?", "Who's my {k}?", "Do you remember my {k}?", "What did I say my {k} is called?"),
         ("{v}! Your {k}.", "Your {k} is {v}!", "{v}, right? Your {k}."),
         ("{v}! Is your {k} single?", "{v}? Nice. I got seven sisters!", "Family's important. Say hi to {v}!"),
         _FIRST, ("sister", "brother", "cousin", "wife", "husband", "girlfriend", "boyfriend", "daughter", "son", "mom",
                  "dad", "roommate", "best friend", "boss")),
    Fact(("I'm going to {v} next week!", "I'm flying to {v} on Friday.", "Next month I'm visiting {v}.",
          "I'm taking a trip to {v} soon."),
         ("Where am I going?", "Where's my trip?", "Remember where I'm flying?", "Where did I say I'm going next week?"),
         ("{v}! Bring me something!", "You're going to {v}!", "{v}! Lucky you."),
         ("{v}? Whoa! Bring me a sandwich!", "{v}! I'm so jealous.", "Wow, {v}! Have fun!"),
         ("Paris", "Tokyo", "Las Vegas", "Hawaii", "Mexico", "Berlin", "Madrid", "Greece", "Florida", "Alaska", "India",
          "Brazil", "Vienna", "Iceland", "Cancun", "Lisbon")),
    Fact(("My favorite food is {v}.", "I love {v} more than anything.", "I could eat {v} every day."),
         ("What's my favorite food?", "What food do I love?", "Remember what I like to eat?"),
         ("{v}! You love {v}.", "You said {v}! Good choice.", "{v}, right? We should get some."),
         ("{v}! Now you're talkin'!", "Ooh, {v}! I'm hungry now.", "{v}? Me too! I love food."),
         ("tacos", "pancakes", "lasagna", "burgers", "ramen", "curry", "dumplings", "steak", "cheesecake", "hot dogs",
          "falafel", "spaghetti", "fried chicken", "burritos")),
    Fact(("I play the {v}.", "I've been playing the {v} for years.", "I'm learning the {v}."),
         ("What instrument do I play?", "What do I play?", "Remember my instrument?"),
         ("The {v}! You play the {v}.", "You play the {v}!", "{v}! Play me something."),
         ("The {v}? Cool! Phoebe plays the guitar.", "Whoa, the {v}! Play me something!", "The {v}! That's hard, right?"),
         ("guitar", "piano", "violin", "trumpet", "saxophone", "cello", "flute", "bass", "harmonica", "banjo")),
    Fact(("I'm allergic to {v}.", "I can't eat {v}, I'm allergic.", "{v} makes me sick, I'm allergic."),
         ("What am I allergic to?", "Remember my allergy?", "What can't I eat?"),
         ("{v}! No {v} for you.", "You're allergic to {v}.", "{v}! I'll eat yours."),
         ("No {v}? That's terrible!", "Allergic to {v}? More for me!", "Whoa, no {v}? I'm sorry."),
         ("shrimp", "milk", "eggs", "strawberries", "wheat", "cats", "dust", "bees", "chocolate", "almonds")),
    Fact(("I drive a {v}.", "I just bought a {v}.", "My car is a {v}."),
         ("What car do I drive?", "What did I buy?", "Remember my car?"),
         ("A {v}! Take me for a ride.", "You drive a {v}!", "The {v}! Can I drive it?"),
         ("A {v}? Sweet ride!", "Whoa, a {v}! Can I drive it?", "A {v}! Nice!"),
         ("Porsche", "Jeep", "Honda", "Tesla", "minivan", "pickup truck", "Volvo", "Corvette", "Vespa", "Cadillac")),
    Fact(("I have a job interview tomorrow at a {v}.", "I start work at a {v} on Monday.", "I got a job at a {v}!"),
         ("Where's my interview?", "Where do I start work?", "Where did I say the job is?"),
         ("At the {v}!", "The {v}! Good luck.", "A {v}, right? You'll be great."),
         ("A {v}? You'll be great!", "The {v}! Knock 'em dead!", "Whoa, a {v}! Good luck!"),
         ("hospital", "museum", "hotel", "school", "bakery", "newspaper", "law firm", "zoo", "theater", "gym", "library")),
]
CLOSERS = ("Anyway.", "Okay, so.", "Cool.", "Ha, nice.", "Yeah.", "So anyway...")


def load_persona(path: Path = TRAIN_QA) -> list[dict]:
    return json.loads(path.read_text())["persona"]


def _qa(rng: random.Random, persona: list[dict]) -> tuple[str, str]:
    item = rng.choice(persona)
    return rng.choice(item["q"]), rng.choice(item["a"])


def persona_chat(rng: random.Random, persona: list[dict], pairs: list[tuple[str, str]]) -> Chat:
    """1-3 questions about Joey's life, sometimes after a real exchange."""
    user = rng.choice(USER_NAMES)
    turns, sup = [], []
    if pairs and rng.random() < 0.3:
        said, reply = rng.choice(pairs)
        turns += [Turn(user, said), Turn(BOT, reply)]
        sup += [False, True]
    for _ in range(rng.choice((1, 1, 2, 3))):
        q, a = _qa(rng, persona)
        turns += [Turn(user, q), Turn(BOT, a)]
        sup += [False, True]
    return Chat(turns, sup)


_ARTICLE = re.compile(r"\b([Aa]) (?=[aeiouAEIOU])")


def _fill(template: str, value: str, kind: str) -> str:
    text = _ARTICLE.sub(r"\1n ", template.replace("{v}", value).replace("{k}", kind))
    return text[0].upper() + text[1:]


def memory_chat(rng: random.Random, persona: list[dict], pairs: list[tuple[str, str]]) -> Chat:
    """One or two facts, 1-4 exchanges of other talk, then one fact asked for and recalled."""
    user = rng.choice(USER_NAMES)
    facts = rng.sample(FACTS, rng.choice((1, 1, 2)))
    told = [(f, rng.choice(f.values), rng.choice(f.kinds)) for f in facts]
    turns, sup = [], []
    for fact, value, kind in told:
        turns += [Turn(user, _fill(rng.choice(fact.statements), value, kind)),
                  Turn(BOT, _fill(rng.choice(fact.acks), value, kind))]
        sup += [False, True]
    for _ in range(rng.randint(1, 4)):
        if pairs and rng.random() < 0.5:
            said, reply = rng.choice(pairs)
        else:
            said, reply = _qa(rng, persona)
        if rng.random() < 0.15:
            said = rng.choice(CLOSERS) + " " + said
        turns += [Turn(user, said), Turn(BOT, reply)]
        sup += [False, False]  # the real lines are trained where they come from; here they are context
    fact, value, kind = rng.choice(told)
    turns += [Turn(user, _fill(rng.choice(fact.questions), value, kind)),
              Turn(BOT, _fill(rng.choice(fact.answers), value, kind))]
    sup += [False, True]
    return Chat(turns, sup)
