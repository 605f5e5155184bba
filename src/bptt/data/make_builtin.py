"""Write ``builtin.txt``: the small English corpus that ``bptt train`` uses with no ``--data``.

The text is made here, by a little story grammar with our own word lists, so it is ours to give
away (public domain, CC0) and needs no download. Short simple stories, one sentence per line,
lower case, punctuation split off as in the PTB; a blank line between stories. It has real
structure to learn (agreement of he/she, who goes where to do what, quotes that close) and a
vocabulary of about 600 words, so a small LSTM learns it in a minute and its samples read well.

    python -m bptt.data.make_builtin            # rewrites src/bptt/data/builtin.txt

Only ``random.Random(seed).random()`` is used, whose sequence Python keeps stable across
versions, so the file is reproducible (a test checks that it matches this script).
"""

from __future__ import annotations

import random
import sys
from pathlib import Path

SEED = 2018
STORIES = 500

NAMES = {
    "she": ["anna", "mary", "lily", "rose", "emma", "clara", "nora", "ruth", "alice", "jane",
            "sarah", "lucy"],
    "he": ["tom", "jack", "sam", "ben", "peter", "paul", "leo", "hugo", "oscar", "max", "john",
           "henry"],
}
OBJ = {"she": "her", "he": "him"}
POSS = {"she": "her", "he": "his"}
JOBS = ["farmer", "baker", "fisherman", "teacher", "painter", "sailor", "doctor", "carpenter",
        "shepherd", "weaver", "miller", "potter", "gardener", "singer", "merchant", "cook",
        "tailor", "smith", "poet", "student"]
PERSON_ADJ = ["old", "young", "kind", "clever", "quiet", "brave", "lazy", "poor", "rich", "shy",
              "proud", "tired", "cheerful", "honest", "curious", "gentle"]
HOMES = ["a small village", "a house by the sea", "a cottage near the forest", "a busy town",
         "a farm on the hill", "a hut by the river", "an old mill", "a big city",
         "a valley between two mountains", "a village at the end of the road"]
TIMES = ["morning", "evening", "day", "week", "spring", "sunday", "afternoon"]
# where one goes, and what one does there
PLACES = {
    "the market": ["sell eggs", "buy bread", "sell apples", "buy cheese", "meet friends"],
    "the river": ["catch fish", "fetch water", "wash clothes", "watch the boats"],
    "the forest": ["gather wood", "look for mushrooms", "pick berries", "listen to the birds"],
    "the field": ["plant seeds", "cut the grass", "feed the cows", "fly a kite"],
    "the well": ["fetch water", "meet friends", "rest in the shade"],
    "the harbor": ["watch the boats", "buy fish", "mend the nets", "talk to the sailors"],
    "the garden": ["pick flowers", "plant seeds", "read a book", "water the roses"],
    "the hill": ["look at the sky", "fly a kite", "watch the sheep", "read a book"],
    "the school": ["teach the children", "read a book", "learn to write", "sing songs"],
    "the bridge": ["watch the river", "meet friends", "sell flowers", "wait for the mail"],
}
ANIMALS = ["dog", "cat", "bird", "fox", "horse", "goat", "cow", "crow", "mouse", "rabbit",
           "duck", "owl", "donkey", "sheep", "frog", "hen"]
ANIMAL_ADJ = ["little", "old", "white", "black", "brown", "clever", "lazy", "friendly", "tiny",
              "noisy"]
PET_NAMES = ["pip", "bella", "rex", "milo", "daisy", "toby", "luna", "biscuit", "pepper",
             "sunny", "shadow", "button"]
ANIMAL_DOES = ["followed {obj} everywhere", "slept by the fire all day", "sang every morning",
               "liked to chase the wind", "was afraid of the dark",
               "loved to play in the mud", "never left {poss} side", "ate too much"]
THINGS = ["box", "key", "map", "letter", "coin", "ring", "lamp", "book", "basket", "stone",
          "shell", "feather", "bottle", "bell", "rope", "cup", "seed", "flute", "coat", "boat",
          "hat", "clock", "mirror", "blanket"]
THING_ADJ = ["small", "heavy", "shiny", "broken", "strange", "golden", "wooden", "blue", "red",
             "old", "tiny", "beautiful", "silver", "dusty"]
WHERE_FOUND = ["under a tree", "in the sand", "behind the door", "near the well", "on the road",
               "in the grass", "at the bottom of a chest", "between two rocks", "in the snow",
               "under the bed", "by the river", "in an old shoe"]
FEELINGS = ["happy", "sad", "afraid", "angry", "surprised", "proud", "worried", "glad",
            "excited", "confused"]
ADVICE = ["look near the river", "wait until morning", "ask the old owl",
          "follow the path to the hill", "do not give up", "share it with your friends",
          "keep it safe", "tell the truth", "listen to your heart", "try again tomorrow",
          "be patient", "go to the market and ask there"]
DEEDS = ["walked to the hill", "waited until morning", "looked everywhere", "opened the box",
         "gave it to a poor child", "climbed the tallest tree", "crossed the river",
         "told the whole village", "worked all night", "asked everyone in town",
         "went home and thought for a long time", "sang a song to feel brave"]
WEATHER = ["the next day it began to rain .", "the wind was cold and the sky was gray .",
           "that night the snow fell softly on the roofs .", "the sun was warm and bright .",
           "a storm came from the sea .", "the moon was full and the stars were out .",
           "it was the hottest day of the summer .", "the fog was so thick that nobody could see ."]
MORALS = ["kindness is never wasted", "a friend in need is a friend indeed",
          "slow and steady wins the race", "honesty is the best policy",
          "small things can matter a great deal", "it is better to share than to keep",
          "hard work brings its own reward", "one should look before one leaps",
          "patience is a kind of strength", "the truth is always worth telling",
          "home is where the heart is", "every cloud has a silver lining"]
ENDINGS = ["and so , {name} lived happily ever after .", "the end .",
           "from that day on , {pro} was never {feeling} again .",
           "and that is the story of {name} the {job} .",
           "{pro} still tells this story to the children of the village ."]


class Writer:
    """A story grammar driven by ``random.Random(seed).random()`` only."""

    def __init__(self, seed: int) -> None:
        self.r = random.Random(seed)

    def pick(self, seq: list) -> object:
        return seq[int(self.r.random() * len(seq))]

    def chance(self, p: float) -> bool:
        return self.r.random() < p

    def story(self) -> list[str]:
        pro = self.pick(["she", "he"])
        name = self.pick(NAMES[pro])
        pro2 = self.pick(["she", "he"])
        name2 = self.pick([n for n in NAMES[pro2] if n != name])
        job, job2 = self.pick(JOBS), self.pick(JOBS)
        adj, home = self.pick(PERSON_ADJ), self.pick(HOMES)
        place = self.pick(list(PLACES))
        thing, thing_adj = self.pick(THINGS), self.pick(THING_ADJ)
        w = {"name": name, "pro": pro, "obj": OBJ[pro], "poss": POSS[pro], "job": job,
             "feeling": self.pick(FEELINGS)}
        a = "an" if adj[0] in "aeiou" else "a"
        ta = "an" if thing_adj[0] in "aeiou" else "a"
        lines = [self.pick([
            f"once upon a time there was {a} {adj} {job} named {name} .",
            f"{name} was {a} {adj} {job} who lived in {home} .",
            f"long ago , in {home} , lived {a} {adj} {job} called {name} .",
            f"there once was {a} {adj} {job} , and {pro} was called {name} .",
        ])]
        lines.append(f"every {self.pick(TIMES)} , {pro} went to {place} to "
                     f"{self.pick(PLACES[place])} .")
        if self.chance(0.5):
            animal = self.pick(ANIMALS)
            lines.append(f"{pro} had a {self.pick(ANIMAL_ADJ)} {animal} named "
                         f"{self.pick(PET_NAMES)} .")
            lines.append(f"the {animal} " + self.pick(ANIMAL_DOES).format(**w) + " .")
        if self.chance(0.3):
            lines.append(self.pick(WEATHER))
        if self.chance(0.5):  # a find
            lines.append(f"one day , {pro} found {ta} {thing_adj} {thing} "
                         f"{self.pick(WHERE_FOUND)} .")
            lines.append(self.pick([f"\" what is this ? \" {pro} asked .",
                                    f"{pro} was very {w['feeling']} .",
                                    f"{pro} had never seen such a {thing} before .",
                                    f"{pro} put the {thing} in {POSS[pro]} pocket ."]))
        else:  # a loss
            lines.append(f"one day , {pro} lost {POSS[pro]} {thing_adj} {thing} .")
            lines.append(self.pick([f"\" where is my {thing} ? \" {pro} cried .",
                                    f"{pro} was very {w['feeling']} .",
                                    f"{pro} looked for it all day but could not find it ."]))
        lines.append(f"{pro} asked {name2} , the {job2} , for help .")
        lines.append(f"{name2} said , \" {self.pick(ADVICE)} . \"")
        lines.append(f"so {pro} {self.pick(DEEDS)} .")
        if self.chance(0.3):
            lines.append(self.pick(WEATHER))
        lines.append(self.pick([
            f"at last , {pro} found the {thing} {self.pick(WHERE_FOUND)} .",
            f"in the end , the {thing} brought {OBJ[pro]} good luck .",
            f"after that , {pro} and {name2} became good friends .",
            f"{name2} smiled and said that the {thing} was safe now .",
            f"{pro} thanked {name2} and gave {OBJ[pro2]} a {self.pick(THING_ADJ)} "
            f"{self.pick(THINGS)} .",
        ]))
        if self.chance(0.6):
            lines.append(f"{name} learned that {self.pick(MORALS)} .")
        lines.append(self.pick(ENDINGS).format(**w))
        return lines


def compose(seed: int = SEED, stories: int = STORIES) -> str:
    """The corpus text: ``stories`` stories, one sentence per line, a blank line between."""
    w = Writer(seed)
    return "\n\n".join("\n".join(w.story()) for _ in range(stories)) + "\n"


def main(argv: list[str] | None = None) -> int:
    out = Path(argv[0]) if argv else Path(__file__).resolve().with_name("builtin.txt")
    out.write_text(compose(), encoding="utf-8")
    print(f"wrote {out} ({out.stat().st_size:,} bytes)")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
