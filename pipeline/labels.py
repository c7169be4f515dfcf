"""Every label a person reads, in one place (Chinese for departments, English for logs)."""

WARNING_TYPES = {"relapse": "因病返贫预警", "impoverish": "因病致贫预警"}
STATUSES = {"new": "新增", "continuing": "持续"}
DEPARTMENTS = {"civil_affairs": "民政部门", "rural_revitalization": "乡村振兴部门"}
IDENTITIES = {
    "tekun": "特困人员",
    "orphan": "孤儿/事实无人抚养儿童",
    "dibao": "低保对象",
    "fanpin": "返贫致贫人口",
    "dibao_edge": "低保边缘家庭成员",
    "monitor_unstable": "脱贫不稳定户",
    "monitor_edge": "边缘易致贫户",
    "monitor_sudden": "突发严重困难户",
    "tuopin": "脱贫人口",
    "illness_poor": "因病致贫重病患者",
    "expense_poor": "支出型困难家庭中的重病患者",
    "ordinary": "普通参保人员",
}
INSUTYPES = {"310": "职工基本医疗保险", "390": "城乡居民基本医疗保险"}
COUNTIES = {
    "370811": "任城区",
    "370812": "兖州区",
    "370826": "微山县",
    "370827": "鱼台县",
    "370828": "金乡县",
    "370829": "嘉祥县",
    "370830": "汶上县",
    "370831": "泗水县",
    "370832": "梁山县",
    "370881": "曲阜市",
    "370883": "邹城市",
}
