"""The offline stand-in teacher: the teacher prompt's policy, executed by rules.

Offline there is no LLM that can read a long prompt. This module stands in for
one: it applies the policy that :mod:`helpers.prompt` states (delete URLs and
numbers, judge code by its comments, romanised and very short text is ``ot``,
...) on top of an established statistical language detector, ``lingua``. It is
*not* an LLM, and the course says so wherever its numbers appear.

It is served by the local backend as the sampling-only model
``local/policy-teacher``: it receives the fully rendered teacher conversation as
tokens, like an LLM would, reads which ``[rule: name]`` sections the system
prompt contains, finds the user's text, and answers
``<one line of reasoning>\\nFinal Answer: xx``. A rule removed from the prompt
changes its behaviour where the rule is executable: without ``latin`` or
``scripts`` it forces other languages into the nearest label, without ``format``
it answers in prose that no parser accepts.

It also returns a confidence for every label; sampling at temperature T draws
the label from those confidences sharpened by 1/T, so K-sample voting and soft
labels behave as they would with a real teacher.

Its limits are the detector's. A language lingua has no model for is read as the
nearest one it has: of the pool's 15 Galician and 15 Nepali sentences, 8 come
out as Spanish and 11 as Hindi. The gold sets have neither language. It reads
the first :data:`READ_CHARS` characters of a query (the course's longest has 447).

Example
-------
>>> decide("Wir sehen uns um 10:30 https://example.org").label
'de'
>>> decide("def f(x):\\n    return x * 2").label
'ot'
"""

from __future__ import annotations

import math
import os
import random
import re
import threading
import unicodedata
import uuid
from concurrent.futures import Future
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import regex

from .labels import LABEL_NAMES, LABELS
from .prompt import RULE_NAMES, active_rules

ALL_RULES = frozenset(RULE_NAMES)
LATIN_LABELS = ("de", "en", "es", "fr", "tr", "vi")

READ_CHARS = 4_000
"""How much of a query :func:`decide` reads: the detector's time grows faster than the length
of a long word (1.6 s for one of 80 KB, nearly 90 s for 400 KB), and a few thousand characters tell
the language as well as more would."""

# Languages the detector knows. The twelve labels, and the neighbours that the
# policy sends to `ot`: with both lists a Portuguese sentence is recognised as
# Portuguese (so `ot`) instead of being forced into Spanish.
_LABEL_LANGS = {
    "ar": "ARABIC", "de": "GERMAN", "el": "GREEK", "en": "ENGLISH", "es": "SPANISH",
    "fr": "FRENCH", "hi": "HINDI", "ru": "RUSSIAN", "tr": "TURKISH", "ur": "URDU",
    "vi": "VIETNAMESE", "zh": "CHINESE",
}  # fmt: skip
_OTHER_LATIN = (
    "ITALIAN PORTUGUESE CATALAN DUTCH AFRIKAANS SWEDISH DANISH BOKMAL NYNORSK ICELANDIC POLISH "
    "CZECH SLOVAK SLOVENE CROATIAN BOSNIAN ROMANIAN HUNGARIAN FINNISH ESTONIAN LATVIAN LITHUANIAN "
    "INDONESIAN MALAY TAGALOG SWAHILI YORUBA ZULU SOMALI ALBANIAN AZERBAIJANI BASQUE WELSH IRISH "
    "LATIN ESPERANTO MAORI"
).split()
_OTHER_SCRIPTS = (
    "UKRAINIAN BULGARIAN SERBIAN MACEDONIAN BELARUSIAN KAZAKH MONGOLIAN PERSIAN MARATHI JAPANESE "
    "KOREAN THAI HEBREW ARMENIAN GEORGIAN BENGALI TAMIL TELUGU GUJARATI PUNJABI"
).split()

# ---------------------------------------------------------------- text surgery

# Host names and e-mails start where a run of their characters starts (a host also after "..."),
# never inside one: from every position inside a long hyphenated or dotted token the scan ran to
# its end, so a 40 KB token took minutes. A match found inside a run is found from its start too.
_HOST_START = r"(?<![\w-])(?<![\w-]\.)"
_URL = re.compile(r"(?:https?://|www\.)\S+|" + _HOST_START + r"[\w-]+(?:\.[\w-]+)*\.(?:com|org|net|io|dev|app|info|edu|gov|[a-z]{2})/\S*", re.I)
_DOMAIN = re.compile(_HOST_START + r"[\w-]+(?:\.[\w-]+)*\.(?:com|org|net|io|dev|app|info|edu|gov|co\.uk|de|fr|es|ru|cn|tr|vn|gr|in|pk)\b", re.I)
_EMAIL = re.compile(r"(?<![\w.+-])[\w.+-]+@[\w-]+(?:\.[\w-]+)+")
_HANDLE = re.compile(r"(?<!\w)[@#][\w.]*\w")
_EMOTICON = re.compile(r"(?<!\w)(?:[:;=xX8][-']?[)(DPpOo/\\|*]+|<3|\^_\^|xD)(?!\w)")
_NUMBER = re.compile(r"[$€£¥₹]?\d[\d.,:/'’%-]*(?:\s?(?:km|kg|cm|mm|ml|m|g|l|h|min|s|gb|mb|tb|kb|ghz|mhz|°c|°f|€|\$|%)\b)?", re.I)
_CODE_TOKEN = re.compile(r"\b\w*_\w*\b|\b(?=[a-z]*\d)(?=\d*[a-z])[a-z\d]{3,}\b", re.I)  # user_name, dark99
_ARABIZI = re.compile(r"\b(?=[a-z]*[2-9][a-z])[a-z]*[2-9][a-z]+\b|\b[a-z]+[2-9][a-z]*\b", re.I)
_ORDINAL = re.compile(r"^\d+(st|nd|rd|th|er|e|ème|º|ª|\.)$", re.I)
_WORD = regex.compile(r"[\p{L}\p{M}]+(?:['’-][\p{L}\p{M}]+)*")

_FUNCTION_WORDS = set(
    """the and is are of to in with you it a an this that for on at be was not
    der die das und ist nicht mit auf ein eine ich du wir sie es
    el la los las de que y es por para un una en con no
    le les des et est pas une dans avec je tu nous vous il elle
    bir ve bu için değil ne çok da de ile
    và là của có không những một các được cho""".split()
)

# Common words of romanised Hindi/Urdu, Arabic, Russian, Mandarin (pinyin) and Greek.
# Only words that are not also everyday words of German, English, Spanish, French,
# Turkish or Vietnamese are listed.
_ROMANIZED = set(
    """hai hain kya kyaa nahi nahin nahii hum aap tum kaise kaisa kaisi acha accha achha achchha bahut
    bohat bohot kyun kyon yaar bhai abhi aaj mujhe mujhko tumhe tumhein tera mera meri mere tumhara
    hamara hoon hun raha rahi rahe gaya gayi karo karna karte karti bhi toh lekin kuch koi sab sabhi
    log ja jaa wapas wapsi hoga hogi hoge dekhna dekhne chalein chalte shaam parson ustal poidu spat jaldi thoda zyada ziada pata chalo dekho wala wali haan shukriya dhanyavad dhanyawad khana paani
    pani ghar kaam raat subah shaam kitna kitne kahan kab kaun apna apni ho gaye hota hoti karein
    chahiye chahta chahti sakta sakti sakte jaana jana aana aaya aayi milte milenge baat baatein
    ana enta inta enti inti huwa hiya ehna ihna ahlan marhaba shukran habibi habibti yalla inshallah
    wallah mashallah kifak keefak kaifa kayf izzayak ezayak shlonak aywa naam mish msh kteer ktir
    shwaya shway sabah masa khair kheir tayeb tayyeb mabrouk alhamdulillah halla hala leh lesh ilyoum
    bukra bokra ams delwa2ti delwaati hena hnak fein feen enti anti
    privet kak dela spasibo ochen khorosho horosho eto chto shto net poka segodnya zavtra vchera
    rabota rabotayu mozhno nado tozhe eshche esche uzhe kogda gde pochemu potomu zdravstvuyte dobroe
    utro vecher noch ladno davai davay kstati skolko khochu hochu mne menya tebya tebe nas vas budu
    byl bylo byla vsyo vse vsem ty vy oni ona ego yeyo chem kotoryi ochen' horoshiy plokho
    nihao xiexie duibuqi meiguanxi zaijian jintian mingtian zuotian chifan gongzuo xuexi pengyou
    laoshi xuesheng zhongguo yidian keyi xiang zhidao juede xihuan tianqi feichang haode shenme
    zenme weishenme zhege nage women nimen tamen hen wo shi zai bu mei hao qu lai kan shuo yao
    zhe ge dou hai ye ba ne le ma ni ta men de xie qing wen dui hui zhen ting xian
    kalimera kalispera kalinixta kaneis kanis eisai eimai einai efxaristo euxaristo parakalo oxi ochi
    giati yiati simera avrio xthes agapi pame entaksei endaxi oraia orea thelo thelw ksero xero
    mporeis mporo kai den tha poly poli mou sou tou mas sas pou pos nai ti kala kalo ela filos file""".split()
)
_ROMANIZED_AMBIGUOUS = _FUNCTION_WORDS | set(
    "de la le ne ma ta na ni my on to da ya you men me se ko ki ka ke fi min wa bas ti pos pou mas sas "
    "tis sou mou kai den tha nai bu hui kan ana kal din par kar ona ho hai ye ba ge hao ting zhen".split()
)
_PINYIN_TONES = re.compile(r"[āǎēěīǐōǒūǔǖǘǚǜ]")

_CODE_SIGNALS = [
    re.compile(p, re.M | re.I)
    for p in (
        r"^\s*(def|class|import|from|function|const|let|var|public|private|static|fn|func|package|return|if|for|while|echo|SELECT|INSERT|UPDATE|CREATE|DELETE)\b",
        r"[;{}]\s*$",
        r"=>|==|!=|&&|\|\||\+=|::|->",
        r"(?<![\w.])\.*\w[\w.]*\([^()]*\)",  # a call; from the start of a dotted name only (as for _URL)
        r"^\s*[\w.\[\]\"']+\s*[:=]\s*\S",
        r"</?[a-z][\w-]*(\s[^<>]*)?>",
        r"^\s*(//|#(?![\w\d]+\b\s*$)|--\s|/\*|<!--)",
        r"^#!|^\s*#include|\$\{?\w+",
        r"^\s*[\w-]+:\s*$",
        r"\|\s*(sort|grep|awk|sed|head|tail|uniq|wc|xargs|cut)\b|^\s*(cd|ls|cat|grep|sudo|pip|npm|git|docker|curl|mkdir|rm|cp|mv|chmod|export)\s",
        r"<\?php|<\?xml",
        r"^\s*-\s+\S",
    )
]
_TAG = re.compile(r"</?[a-z][\w-]*(\s[^<>]*)?>", re.I)


_COMMENT = re.compile(
    r'"""(.*?)"""|\'\'\'(.*?)\'\'\'|/\*(.*?)\*/|<!--(.*?)-->|(?<![:"\'\w])//([^\n]*)$|(?:^|\s)#(?!include|!|\w+\s*[({])([^\n]*)$|(?:^|\s)--\s([^\n]*)$|^\s*;\s([^\n]*)$',
    re.S | re.M,
)
_STRING = re.compile(r'"((?:[^"\\\n]|\\.)*)"|\'((?:[^\'\\\n]|\\.)*)\'|`((?:[^`\\]|\\.)*)`')


def strip_noise(text: str) -> str:
    """Delete URLs, e-mails, handles, hashtags, emoji, emoticons and numbers (the ``noise`` rule)."""
    text = _URL.sub(" ", text)
    text = _EMAIL.sub(" ", text)
    text = _DOMAIN.sub(" ", text)
    text = _HANDLE.sub(" ", text)
    text = _EMOTICON.sub(" ", text)
    text = "".join(" " if unicodedata.category(c) in ("So", "Sk", "Cs", "Co") or c in "\u200d\ufe0f" else c for c in text)
    text = _CODE_TOKEN.sub(" ", text)
    text = _NUMBER.sub(" ", text)
    return re.sub(r"\s+", " ", text).strip()


def looks_like_code(text: str) -> bool:
    """True when at least two different marks of code or markup appear."""
    score = sum(1 for signal in _CODE_SIGNALS if signal.search(text))
    return score + (len(_TAG.findall(text)) >= 2) >= 2


def code_natural_text(code: str) -> str:
    """The comments and string literals of a snippet that hold phrases of three or more words."""
    pieces = []
    for m in _COMMENT.finditer(code):
        pieces.append(next(g for g in m.groups() if g is not None))
    without_comments = _COMMENT.sub(" ", code)
    for m in _STRING.finditer(without_comments):
        pieces.append(next((g for g in m.groups() if g is not None), ""))
    # HTML/XML text between tags is natural language too.
    if re.search(r"</\w+>", code):
        pieces.extend(re.findall(r">([^<>]+)<", code))
    keep = [p for p in pieces if count_words(strip_noise(p)) >= 3]
    return " ".join(keep)


# ---------------------------------------------------------------- scripts


def script_of(ch: str) -> str | None:
    """The writing system of one letter, by its Unicode name ('latin', 'greek', ...)."""
    if not ch.isalpha():
        return None
    name = unicodedata.name(ch, "")
    for key, script in (
        ("LATIN", "latin"), ("GREEK", "greek"), ("CYRILLIC", "cyrillic"), ("DEVANAGARI", "devanagari"),
        ("ARABIC", "arabic"), ("CJK", "han"), ("HIRAGANA", "kana"), ("KATAKANA", "kana"),
        ("HANGUL", "hangul"), ("THAI", "thai"), ("HEBREW", "hebrew"),
    ):  # fmt: skip
        if name.startswith(key):
            return script
    return "other"


def script_counts(text: str) -> dict[str, int]:
    """How many letters of ``text`` each writing system has (:func:`script_of`; others not counted).

    >>> script_counts("Привет, world")
    {'cyrillic': 6, 'latin': 5}
    """
    counts: dict[str, int] = {}
    for ch in text:
        s = script_of(ch)
        if s:
            counts[s] = counts.get(s, 0) + 1
    return counts


def count_words(text: str) -> int:
    """Words of natural language; Chinese, Japanese and Thai count two characters a word."""
    n = 0
    for w in _WORD.findall(text):
        dense = sum(1 for c in w if script_of(c) in ("han", "kana", "thai"))
        n += (dense + 1) // 2 if dense else 1
    return n


# ---------------------------------------------------------------- detector


@lru_cache(maxsize=8)
def _detector(names: tuple[str, ...]):
    from lingua import Language, LanguageDetectorBuilder

    return LanguageDetectorBuilder.from_languages(*[getattr(Language, n) for n in names]).build()


def _to_label(language) -> str:
    code = language.iso_code_639_1.name.lower()
    return code if code in _LABEL_LANGS else "ot"


def detector_languages(rules: frozenset[str], script: str) -> tuple[str, ...]:
    """Which languages the detector may answer, given the rules in force and the script."""
    names = list(_LABEL_LANGS.values())
    if script == "latin":
        if "latin" in rules:
            names += _OTHER_LATIN
    elif "scripts" in rules:
        names += _OTHER_SCRIPTS
    return tuple(sorted(names))


def label_confidences(text: str, languages: tuple[str, ...]) -> tuple[str, float, dict[str, float]]:
    """The detector's verdict on ``text``: best label, its language's confidence, and the
    confidence in each of the 13 labels (other languages add up into ``ot``)."""
    conf = dict.fromkeys(LABELS, 0.0)
    values = _detector(languages).compute_language_confidence_values(text)
    for cv in values:
        conf[_to_label(cv.language)] += cv.value
    total = sum(conf.values())
    if total <= 0 or not values:
        return "ot", 0.0, {k: (1.0 if k == "ot" else 0.0) for k in LABELS}
    return _to_label(values[0].language), values[0].value, {k: v / total for k, v in conf.items()}


# ---------------------------------------------------------------- the policy


@dataclass
class Decision:
    """The stand-in's answer: label, confidence per label, and the rule that decided."""

    label: str
    confidences: dict[str, float]
    rule: str
    reason: str
    considered: str = ""


def _decided(label: str, conf: dict[str, float], rule: str, reason: str, considered: str) -> Decision:
    """Make ``label`` the most likely one, keeping the detector's view of the rest."""
    conf = dict(conf)
    if max(conf, key=conf.get) != label or conf[label] < 0.5:
        rest = sum(v for k, v in conf.items() if k != label) or 1.0
        conf = {k: (0.85 if k == label else 0.15 * v / rest) for k, v in conf.items()}
    return Decision(label, conf, rule, reason, considered)


def _romanized(text: str, latin_letters: int, total_letters: int) -> str | None:
    if total_letters == 0 or latin_letters / total_letters < 0.9:
        return None
    if _PINYIN_TONES.search(text):
        return "pinyin tone marks"
    words = [w.lower() for w in _WORD.findall(text)]
    if not words:
        return None
    arabizi = [w for w in _ARABIZI.findall(text) if not _ORDINAL.match(w) and sum(c.isalpha() for c in w) >= 3]
    distinctive = [w for w in words if w in _ROMANIZED and w not in _ROMANIZED_AMBIGUOUS]
    loose = [w for w in words if w in _ROMANIZED]
    if arabizi and len(words) >= 2:
        return "Arabic letters written as digits (Arabizi)"
    if len(distinctive) >= 1 and len(loose) / len(words) >= 0.3:
        return "romanised words such as " + ", ".join(sorted(set(distinctive))[:3])
    return None


_VIETNAMESE = re.compile("[ơưđảẻỉỏủỷẩẳểổởửẫẵễỗỡữ]", re.I)
_SURNAMES = set("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")
# Given names common in Arabic-script and Devanagari text, where no capital letter marks a name.
_NAMES = set("محمد أحمد علي عمر خالد يوسف حسن حسين فاطمة عائشة مريم زينب سارة ليلى نور إبراهيم عبد الله "
             "عمران عثمان بلال حمزہ عائشہ فاطمہ "
             "राहुल प्रिया अमित सुनीता अनिल पूजा रवि नेहा संजय कुमार शर्मा सिंह वर्मा गुप्ता".split())
# Everyday words that make a two- or three-word phrase unmistakable in one language.
_COMMON = {
    "en": set("good morning night evening afternoon thank thanks very much happy birthday get well soon done see later "
              "how are what's up please sorry welcome excuse me love i miss take care have nice day all best wishes".split()),
    "de": set("gute guten morgen nacht abend tag vielen dank danke schön bis bald später morgen mach's gut alles liebe "
              "wie geht's gehts herzlichen glückwunsch entschuldigung bitte sehr tschüss gute besserung schönes "
              "wochenende frohe frohes weihnachten neues jahr".split()),
    "es": set("buenos buenas días noches tardes muchas gracias hasta luego mañana pronto no pasa nada feliz cumpleaños "
              "por favor lo siento qué tal cómo estás te quiero mucho bienvenido bienvenida no".split()),
    "ru": set("доброе утро спокойной ночи спасибо большое до свидания с днём рождения как дела всего хорошего привет "
              "всем удачи пожалуйста извините".split()),
    "fr": set("bonjour bonsoir bonne nuit journée soirée merci beaucoup à bientôt demain plus tard s'il vous plaît te "
              "je t'aime bon anniversaire courage appétit ça va désolé bienvenue salut tout le monde".split()),
    "tr": set("günaydın iyi geceler akşamlar günler teşekkür ederim çok sağ ol olun görüşürüz görüşmek üzere "
              "hoş geldiniz geldin doğum günün kutlu olsun nasılsın seni seviyorum geçmiş olsun lütfen".split()),
    "vi": set("chào buổi sáng tối chúc ngủ ngon cảm ơn bạn rất nhiều hẹn gặp lại may mắn mừng sinh nhật xin lỗi "
              "anh yêu em khỏe không tạm biệt".split()),
}
_HINDI_CUES = set("है हैं था थी थे का की के में नहीं क्या तुम हम आप गया गई रहा रही रहे को से भी और".split())
_MARATHI_CUES = set("आहे आहेत आहोत होते होता होती मी तू नाही काय आणि हे ते हा ही मध्ये आम्ही तुम्ही झाला झाली खूप".split())
_HINDI_ENDINGS = ("गा", "गी", "गे", "ूँ", "ें", "िए", "ाएँ")
_MARATHI_ENDINGS = ("चा", "ची", "चे", "च्या", "ला", "तोस", "तेस", "ल्या", "णार", "ून")


def _hindi_or_marathi(text: str, detected: str) -> str:
    """Hindi and Marathi share Devanagari; their small words and case endings differ."""
    words = _WORD.findall(text)
    hindi = sum(w in _HINDI_CUES or w.endswith(_HINDI_ENDINGS) for w in words)
    marathi = sum(w in _MARATHI_CUES or w.endswith(_MARATHI_ENDINGS) for w in words)
    score = marathi - hindi + (0.5 if detected != "hi" else -0.5)
    return "ot" if score > 0 else "hi"


def _russian_or_other(text: str, detected: str) -> str:
    """Letters that only some Cyrillic alphabets have settle most cases; the detector the rest."""
    if re.search("[іїєґўјљњћђџ]", text, re.I):
        return "ot"  # Ukrainian, Belarusian, Serbian, Macedonian
    if re.search("[ыэё]", text, re.I):
        return "ru"
    return detected


def decide(text: str, rules=ALL_RULES) -> Decision:
    """Apply the policy of the rules in ``rules`` to ``text``, its first :data:`READ_CHARS`
    characters (see the module docstring)."""
    rules = frozenset(rules)
    nothing = {"ot": 1.0, **dict.fromkeys(LABELS[:-1], 0.0)}
    text = text[:READ_CHARS]
    considered = text
    if "code" in rules and looks_like_code(text):
        considered = code_natural_text(text)
        if not considered:
            return _decided("ot", nothing, "code", "code with no comments or strings in a natural language", "")
    if "romanized" in rules:
        letters = script_counts(strip_noise(considered))
        why = _romanized(considered, letters.get("latin", 0), sum(letters.values()))
        if why:
            _, _, conf = label_confidences(strip_noise(considered) or considered, detector_languages(rules, "latin"))
            return _decided("ot", conf, "romanized", why, considered)
    if "noise" in rules:
        considered = strip_noise(considered)
    words = count_words(considered)
    if words == 0:
        return _decided("ot", nothing, "noise", "nothing but numbers, links, handles or symbols", considered)
    counts = script_counts(considered)
    if not counts:  # words but no letters (digits, symbols), left when the noise rule is off
        return _decided("ot", nothing, "detector", "no letters to read", considered)
    script = max(counts, key=counts.get)
    best, best_value, conf = label_confidences(considered, detector_languages(rules, script))
    rule = "detector"
    if "scripts" in rules and script != "latin":
        rule = "scripts"
        if script == "kana" or (script == "han" and counts.get("kana")):
            return _decided("ot", conf, "scripts", "Japanese kana", considered)
        if script in ("hangul", "thai", "hebrew", "other"):
            return _decided("ot", conf, "scripts", f"{script} script is outside the label set", considered)
        if script == "greek":
            best = "el"
        elif script == "han":
            best = "zh"
        elif script == "devanagari":
            best = _hindi_or_marathi(considered, best)
        elif script == "cyrillic":
            best = _russian_or_other(considered, best)
        elif script == "arabic" and best == "ar" and len(re.findall("[ٹڈڑںے]", considered)) >= 2:
            best = "ur"
    elif script == "latin" and "latin" in rules:
        rule = "latin"
        if best == "ot" and _VIETNAMESE.search(considered):
            best = "vi"  # letters with horn or hook above are Vietnamese only
    if "short" in rules and words < 4:
        tokens = _WORD.findall(considered)
        lowered = [w.lower() for w in tokens]
        phrase = next((lab for lab, common in _COMMON.items()
                       if all(w in common or w in _FUNCTION_WORDS for w in lowered) and any(w in common for w in lowered)), None)
        cased = script in ("latin", "cyrillic", "greek")
        title_case = cased and bool(tokens) and all(w[0].isupper() for w in tokens)
        function = any(w in _FUNCTION_WORDS for w in lowered)
        if words < 2:
            return _decided("ot", conf, "short", "a single word or name", considered)
        if phrase and len(tokens) >= 2:
            return _decided(phrase, conf, "short", f"a common {LABEL_NAMES[phrase]} phrase", considered)
        if (title_case and not function) or (script == "han" and len(considered.strip()) <= 3 and considered.strip()[0] in _SURNAMES) \
                or any(w in _NAMES for w in tokens):
            return _decided("ot", conf, "short", "looks like a name", considered)
        # Only two words the detector barely knows are "too short to be sure": with three words,
        # or below 0.2, the pool's written labels of short phrases disagreed far more often.
        if script == "latin" and words < 3 and best_value < 0.1:
            return _decided("ot", conf, "short", "too short to be sure", considered)
    if "mixed" in rules and words >= 4:
        share = _dominant_share(considered)
        if share is not None and share < 2 / 3:
            return _decided("ot", conf, "mixed", f"no language has two thirds of the words ({share:.0%})", considered)
    if best == "ot":
        return _decided("ot", conf, rule, "a language outside the label set", considered)
    return _decided(best, conf, rule, f"{LABEL_NAMES[best]} words and letters", considered)


_CLAUSE = re.compile(r"(?<=[.!?;:,。！？،؟۔])\s+|\s+[-–—]\s+")


def _dominant_share(text: str) -> float | None:
    """Share of the words in the most common language, or None when the text is not mixed.

    Words in different scripts are counted by script. Otherwise the text is cut into
    clauses at punctuation, each clause of three or more words is identified on its
    own, and words are counted per language; clauses in no clear label language go
    to the text's main language. Without punctuation the detector's own segmentation,
    restricted to the Latin-script labels, is used. A second language needs at
    least three words to count.
    """
    by_script: dict[str, int] = {}
    for w in _WORD.findall(text):
        sc = script_of(w[0]) or "other"
        by_script[sc] = by_script.get(sc, 0) + count_words(w)
    top = sorted(by_script.values(), reverse=True)
    if len(top) >= 2 and top[1] >= 3:
        return top[0] / sum(top)
    main = max(by_script, key=by_script.get, default=None)
    if main not in ("latin", "arabic"):
        return None
    clauses = [c for c in _CLAUSE.split(text) if c.strip()]
    if len(clauses) >= 2:
        pieces = clauses
    elif main == "latin":
        latin = tuple(sorted(_LABEL_LANGS[k] for k in LATIN_LABELS))
        pieces = [text[s.start_index : s.end_index] for s in _detector(latin).detect_multiple_languages_of(text)]
    else:
        return None
    found: list[tuple[str | None, int]] = []
    for piece in pieces:
        n = count_words(piece)
        lab, value, _ = label_confidences(piece, detector_languages(ALL_RULES, main))
        if main == "arabic" and lab == "ar" and len(re.findall("[ٹڈڑںے]", piece)) >= 2:
            lab = "ur"
        found.append((lab if n >= 3 and lab != "ot" and value >= 0.05 else None, n))
    counted = [lab for lab, _ in found if lab]
    if not counted:
        return None
    majority = max(set(counted), key=lambda lab: sum(n for x, n in found if x == lab))
    words_by_label: dict[str, int] = {}
    for lab, n in found:
        words_by_label[lab or majority] = words_by_label.get(lab or majority, 0) + n
    top = sorted(words_by_label.values(), reverse=True)
    if len(top) < 2 or top[1] < 3:
        return None
    return top[0] / sum(top)


def answer_text(decision: Decision, label: str, rules=ALL_RULES) -> str:
    """What the stand-in writes: a line of reasoning, then the answer in the prompt's format."""
    if "format" not in rules:
        return f"This text is {LABEL_NAMES[label] if label != 'ot' else 'not in a listed language'}."
    return f"Rule {decision.rule}: {decision.reason}.\nFinal Answer: {label}"


# ---------------------------------------------------------------- served as a model

_TURN = re.compile(r"<\|im_start\|>(\w+)\n(.*?)<\|im_end\|>", re.S)


def read_conversation(rendered: str) -> tuple[str, str]:
    """(system prompt, last user text) of a ChatML-rendered conversation."""
    system, user = "", None
    for role, content in _TURN.findall(rendered):
        if role == "system":
            system = content
        elif role == "user":
            user = content
    if user is None:
        raise ValueError("the stand-in teacher found no user turn in the prompt")
    return system, user


def _sharpen(conf: dict[str, float], temperature: float) -> np.ndarray:
    p = np.array([max(conf[k], 1e-9) for k in LABELS], dtype=np.float64)
    p = p ** (1.0 / temperature)
    return p / p.sum()


@dataclass
class PolicyTeacherEngine:
    """Serves :func:`decide` through the local sampling client, as ``local/policy-teacher``."""

    tokenizer: object
    max_context: int | None = None
    calls: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _head: tuple[list[int], str] | None = None  # the last prompt's first turn: its tokens and text

    def _decode(self, ids: list[int]) -> str:
        # The raw tokenizer's decode: transformers' wrapper checks every id of the 3,000-token
        # prompt in Python first, which took a fifth of the stand-in's time (make bench:
        # standin_queries_per_second). The text is the same where the wrapper cleans up no spaces.
        raw = getattr(self.tokenizer, "backend_tokenizer", None)
        if raw is None or getattr(self.tokenizer, "clean_up_tokenization_spaces", True):
            return self.tokenizer.decode(ids)
        # A run's requests share their first turn, the long prompt, up to the first special
        # token after the start: a hard boundary for the decoder, so that turn is decoded once.
        head = self._head
        if head is not None and len(ids) > len(head[0]) and ids[: len(head[0])] == head[0]:
            return head[1] + raw.decode(ids[len(head[0]):], skip_special_tokens=False)
        text = raw.decode(ids, skip_special_tokens=False)
        cut = 1 + min((ids.index(t, 1) for t in self.tokenizer.all_special_ids if t in ids[1:]), default=len(ids))
        first = raw.decode(ids[:cut], skip_special_tokens=False)
        if cut < len(ids) and text.startswith(first):  # as it should; if not, each request is decoded whole
            self._head = (ids[:cut], first)
        return text

    def read(self, prompt_ids: list[int]) -> tuple[str, frozenset[str]]:
        """The user's text and the rules in force, from the rendered conversation's tokens."""
        system, user = read_conversation(self._decode(prompt_ids))
        rules = frozenset(active_rules(system))
        if "Final Answer:" in system:  # a prompt without rule tags (a short one) may still ask for the format
            rules |= {"format"}
        return user, rules

    def respond(self, prompt_ids: list[int], params, num_samples: int) -> list[tuple[str, float]]:
        """(answer text, log-probability of its label) for each sample of one request: greedy at
        temperature 0, else drawn from the decision's confidences sharpened by 1/T."""
        user, rules = self.read(prompt_ids)
        d = decide(user, rules)
        rng = random.Random(params.seed) if params.seed is not None else random.Random(int.from_bytes(os.urandom(4), "little"))
        out = []
        for _ in range(num_samples):
            if params.temperature <= 0:
                label = d.label
            else:
                p = _sharpen(d.confidences, params.temperature)
                label = LABELS[int(np.searchsorted(np.cumsum(p), rng.random() * p.sum()))]
            out.append((answer_text(d, label, rules), math.log(max(d.confidences[label], 1e-9))))
        return out

    @property
    def vocab_size(self) -> int:
        return len(self.tokenizer)

    def _encode(self, text: str) -> list[int]:
        raw = getattr(self.tokenizer, "backend_tokenizer", None)  # as in _decode: the wrapper costs more than the encoding
        if raw is None:
            return self.tokenizer.encode(text, add_special_tokens=False)
        return raw.encode(text, add_special_tokens=False).ids

    def submit(self, job) -> Future:
        from tinker import types

        fut: Future = Future()
        try:
            with self._lock:
                self.calls += 1
            seqs = []
            for text, logprob in self.respond(job.prompt, job.params, job.num_samples):
                ids = self._encode(text) + [self.tokenizer.eos_token_id]
                limit = job.params.max_tokens or len(ids)
                reason = "stop" if len(ids) <= limit else "length"
                ids = ids[:limit]
                lps = np.zeros(len(ids), dtype=np.float32)
                lps[-1] = logprob  # the choice of label carries the uncertainty
                seqs.append(types.SampledSequence(stop_reason=reason, sequence_id=uuid.uuid4().hex, tokens_np=np.asarray(ids, np.int32), logprobs_np=lps))
            fut.set_result(types.SampleResponse(sequences=seqs))
        except Exception as e:
            fut.set_exception(e)
        return fut

    def compute_logprobs(self, prompt: list[int]):
        raise ValueError("local/policy-teacher is a rule-based stand-in and has no token log-probabilities")
