"""The catalog's own vocabulary for search: what users' words stand for, spelling fixes, renamed products
and the everyday topics that mark a question as out of scope."""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass

_WORD = re.compile(r"[a-z0-9]+")

# A user's phrase (regex on the lower-cased question) -> the words the catalog uses for it, mostly AWS
# service names and common IT synonyms. A few were added after reading the tuning half's misses (limits,
# cloud bill, NFS, cold starts, real user monitoring, redrive) and issue 14's examples (rehost, waves,
# visitors in a line, organization-wide); none from the held-out half. Matched phrases add these words
# to the keyword query at a lower weight; they never replace the user's words.
SYNONYMS: dict[str, str] = {
    r"\bcdn\b|content delivery|edge cache": "cloudfront",
    r"\bbuckets?\b|object storage|object store": "s3",
    r"\bqueues?\b|message queue": "sqs queue",
    r"pub ?/? ?sub|\btopics?\b|fan ?out": "sns",
    r"serverless functions?|\bfunctions?\b|\bfaas\b": "lambda",
    r"event bus|event-driven|events? router": "eventbridge",
    r"state machines?|workflows?|orchestrat": "step functions",
    r"\bkafka\b": "msk kafka",
    r"\bgraphql\b": "appsync",
    r"\bnosql\b|key[- ]value (store|table|database)": "dynamodb",
    r"virtual desktops?|\bvdi\b": "workspaces",
    r"web acls?|web application firewall|\bfirewall rules?\b": "waf firewall",
    r"\bkubernetes\b|\bk8s\b": "eks kubernetes",
    r"\bcontainers?\b|\bdocker\b": "ecs fargate container",
    r"elasticsearch|search engine|full[- ]text search": "opensearch",
    r"data warehouse": "redshift",
    r"\bchat ?bots?\b|conversational (bot|interface)": "chatbot lex",
    r"\bllms?\b|large language models?|foundation models?|gen ?ai|generative": "bedrock generative ai",
    r"speech[- ]to[- ]text|transcri|subtitles?|captions?": "transcribe",
    r"text[- ]to[- ]speech|read (it )?(back )?aloud|spoken audio|voice ?over": "polly",
    r"\bocr\b|scanned|extract text|text out of": "textract",
    r"image recognition|\bfaces?\b|facial|detect objects|computer vision": "rekognition",
    r"sentiment|natural language processing|\bnlp\b|key phrases": "comprehend",
    r"\bdns\b|domain names?": "route 53",
    r"single sign[- ]on|\bsso\b|identity provider|\bsaml\b|\boidc\b": "sso identity federation",
    r"\blog ?in\b|sign[- ]?in|sign[- ]?up|user pools?|authenticat": "cognito authentication",
    r"\bmetrics\b|monitor|alarms?|observability": "cloudwatch monitoring",
    r"audit trail|api calls|who (did|called)": "cloudtrail",
    r"\bcron\b|schedul|timetable|nightly|every (day|night|hour|week)|on a timer": "scheduler schedule",
    r"\be-?mails?\b": "ses email",
    r"\bsms\b|text messages?": "sms sns",
    r"secrets?|passwords?|credentials?|api tokens?": "secrets manager",
    r"certificates?|\btls\b|\bssl\b": "certificate acm",
    r"rehost|lift[- ]and[- ]shift|move (our|my)? ?servers|on[- ]prem": "migration migrate",
    r"\bwaves?\b": "migration",
    r"org(anization)?[- ]wide|every account|all (of )?(our|my|the)? ?accounts"
    r"|many accounts|multi[- ]account|across accounts": "organizations multi-account",
    r"\bhealth (events?|notifications?|dashboard)": "aws health",
    # What AWS Firewall Manager is: one firewall/WAF/security-group policy applied across accounts.
    r"(web acls?|\bwaf\b|firewall|security groups?).*(every|all|across|organi[sz]ation)"
    r"|(every|all|across|organi[sz]ation).*(web acls?|\bwaf\b|firewall|security groups?)": "firewall manager",
    r"resiz|crop|thumbnails?": "image transformation",
    r"\blimits?\b|quotas?|service caps": "quota limits",
    r"\b(cloud|aws) bill|spend|save money|cheaper|costs?\b|billing": "cost optimization",
    r"\bnfs\b|shared file system|network file system": "efs",
    r"real user monitoring|\brum\b": "cloudwatch rum",
    r"cold starts?": "snapstart",
    r"\bretry|re-?run|restart|redrive|replay": "redrive retry",
    r"dead[- ]letter|\bdlq\b": "dlq dead-letter",
    r"\bvms?\b|virtual machines?|servers?\b": "ec2 instances",
    r"\bsql\b|relational|postgres|mysql": "rds aurora",
    r"\bml\b|machine learning|predict|train(ing)? (a )?models?": "machine learning sagemaker",
    r"\bai\b|artificial intelligence": "ai machine learning",
    r"forecast": "forecast",
    r"\bcars?\b|vehicles?|fleet|telematics": "vehicle automotive",
    r"factory|plant floor|shop floor|production line|industrial": "manufacturing industrial",
    r"patients?|hospitals?|clinical|medical|doctors?": "healthcare",
    r"\bgames?\b|gaming|players?": "game",
    r"shoppers?|\bshop\b|storefront|e-?commerce|retail": "retail ecommerce",
    r"payments?|banking|\bbanks?\b|card transactions": "payments financial",
    r"sensors?|devices?|\biot\b|telemetry": "iot",
    r"\bvideos?\b|movies?|footage|broadcast": "video media",
    r"\blive\b": "live streaming",
    r"\bapi\b|\bapis\b|rest endpoint|http endpoint": "api gateway",
    r"data lake": "data lake s3 glue",
    r"\betl\b|extract,? transform": "etl glue",
    r"dashboards?|\bbi\b|business intelligence": "dashboard quicksight",
    r"\bbackups?\b": "backup",
    r"disaster recovery|region (goes )?down|regional (outage|failure)|fail ?over": (
        "disaster recovery multi-region failover"
    ),
    r"load test|stress test|simulated users": "load testing",
    r"compliance|auditors?|regulators?": "compliance",
    r"vulnerabilit|malware|virus": "security scanning",
    r"\bstreams?\b|streaming data|real[- ]?time data": "streaming kinesis",
    r"\bgpu\b": "gpu",
    r"remote (desktop|workstation)s?|work from home": "remote desktop workstation",
    r"translat|multilingual|languages": "translate",
    r"documents?|pdfs?|forms?\b|invoices?": "document",
    r"\bsearch\b": "search",
    r"hpc|high performance computing|supercomputer": "hpc",
    r"\bsftp\b|\bftp\b|file transfer": "transfer family sftp",
    r"feature flags?|feature toggles?": "appconfig feature flag",
    r"tenants?|saas": "multi-tenant",
    r"ticket (drop|sale)|flash sale|traffic spikes?|surges?|sudden (traffic|demand)|too many visitors": (
        "waiting room traffic spike"
    ),
    r"(visitors|users|customers|buyers) in (a )?(line|queue)|hold (visitors|users)": "waiting room",
}

# Entries that are one product under two names (a rename, or a successor that keeps the text). Members
# of a group share their best score, so whichever name the question matches, both appear together.
SAME_PRODUCT: tuple[frozenset[str], ...] = (
    frozenset({"solution/serverless-image-handler", "solution/dynamic-image-transformation-for-amazon-cloudfront"}),
    frozenset(
        {"guidance/guidance-for-rolling-back-changes-to-datasets-in-amazon-s3", "guidance/sample-s3-rollback-tool"}
    ),
    frozenset(
        {"solution/amazon-s3-glacier-refreezer", "solution/data-transfer-from-amazon-s3-glacier-vaults-to-amazon-s3"}
    ),
    frozenset({"solution/aws-connected-mobility-solution", "solution/connected-mobility-solution-on-aws"}),
)

# Everyday topics nothing in an AWS solutions catalog answers. A question that is nearer to these than
# to the catalog is out of scope; they are embedded with the catalog when the index is built.
OFF_TOPIC: tuple[str, ...] = (
    "cooking a recipe for dinner",
    "baking bread and cakes at home",
    "restaurant recommendations nearby",
    "weather forecast for tomorrow",
    "rain, temperature and climate in a city",
    "booking flights and cheap airline tickets",
    "hotels and holiday travel plans",
    "train and bus timetables",
    "visa, passport and government paperwork",
    "paying personal income tax",
    "personal loans, credit cards and savings",
    "stock market tips and investing my money",
    "buying a house or renting an apartment",
    "health symptoms and medical advice",
    "diet, calories and nutrition",
    "exercise, fitness and workouts",
    "sleep problems and stress",
    "pregnancy and caring for a baby",
    "parenting advice for children",
    "pets, dogs and cats",
    "gardening and growing plants",
    "home repairs, plumbing and cleaning",
    "removing stains and doing laundry",
    "fashion, clothes and shoes",
    "hair, makeup and skincare",
    "dating, relationships and marriage",
    "wedding planning and speeches",
    "birthday party ideas",
    "movies and TV shows to watch",
    "music, songs and learning an instrument",
    "books and novels to read",
    "football, cricket and sports results",
    "video game cheats and walkthroughs",
    "celebrity gossip and news",
    "learning a foreign language",
    "school homework, maths and science questions",
    "history and geography facts",
    "definition of an English word",
    "writing a poem or a story",
    "jokes and riddles",
    "astrology and horoscopes",
    "religion and philosophy",
    "politics and elections",
    "buying a car and car repairs",
    "shopping deals and discounts",
    "choosing a laptop or a phone",
    "fixing my phone or my printer",
    "job interview tips and writing a CV",
    "salary negotiation and careers",
    "unit conversion and simple arithmetic",
    "what time a shop opens",
    "tipping etiquette and manners",
    "chess, board games and puzzles",
    "knitting, sewing and crafts",
    "photography tips for beginners",
)

_COMPILED = tuple((re.compile(pattern), words) for pattern, words in SYNONYMS.items())


@dataclass(frozen=True)
class Expansion:
    text: str  # the question with misspelt words corrected
    extra: str  # catalog words the question's phrases stand for


def damerau_levenshtein(a: str, b: str) -> int:
    previous2: list[int] = []
    previous = list(range(len(b) + 1))
    for i in range(1, len(a) + 1):
        current = [i] + [0] * len(b)
        for j in range(1, len(b) + 1):
            cost = 0 if a[i - 1] == b[j - 1] else 1
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + cost)
            if i > 1 and j > 1 and a[i - 1] == b[j - 2] and a[i - 2] == b[j - 1]:
                current[j] = min(current[j], previous2[j - 2] + 1)
        previous2, previous = previous, current
    return previous[-1]


class SpellingCorrector:
    """Corrects words the catalog never uses to the nearest frequent catalog word (symmetric deletes)."""

    def __init__(self, texts: Iterable[str]) -> None:
        self.frequency: Counter[str] = Counter()
        for text in texts:
            self.frequency.update(_WORD.findall(text.lower()))
        self._deletes: dict[str, set[str]] = {}
        for word in self.frequency:
            if len(word) >= 4 and word.isalpha():
                for variant in {word, *_deletions(word)}:
                    self._deletes.setdefault(variant, set()).add(word)

    def correct(self, word: str) -> str:
        if word in self.frequency or len(word) < 4 or not word.isalpha():
            return word
        if word.endswith("s") and (word[:-1] in self.frequency or word[:-2] in self.frequency):
            return word  # a plural of a catalog word ("acls") is not a typo
        candidates = set(self._deletes.get(word, ()))
        for variant in _deletions(word):
            candidates |= self._deletes.get(variant, set())
        limit = 1 if len(word) <= 5 else 2
        scored = [(damerau_levenshtein(word, c), -self.frequency[c], c) for c in candidates]
        best = min((s for s in scored if s[0] <= limit), default=None)
        return best[2] if best else word

    def expand(self, question: str) -> Expansion:
        text = question.lower()
        for word in set(_WORD.findall(text)):
            fixed = self.correct(word)
            if fixed != word:
                text = re.sub(rf"\b{word}\b", fixed, text)
        # Phrases are looked up in the question as typed too: "web ACLs" is a phrase even though the
        # catalog never spells "acls" and the corrector would change it.
        typed = question.lower()
        extra = " ".join(words for pattern, words in _COMPILED if pattern.search(text) or pattern.search(typed))
        return Expansion(text=text, extra=extra)


def _deletions(word: str) -> set[str]:
    return {word[:i] + word[i + 1 :] for i in range(len(word))}
