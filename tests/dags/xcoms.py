"""XComs and task states of a DAG run, read back from the metadata database (airflow imported
inside: see conftest.py)."""

from __future__ import annotations


def xcom_value(dagrun, dag_id: str, task_id: str, key: str = "return_value"):
    """The value a task of ``dagrun`` pushed as XCom ``key`` (exactly one)."""
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    with create_session() as session:
        xcom = session.scalars(
            XComModel.get_many(run_id=dagrun.run_id, dag_ids=dag_id, task_ids=task_id, key=key)
        ).one()
    return XComModel.deserialize_value(xcom)


def states(dagrun) -> dict[str, str]:
    """Each task's state in ``dagrun`` (a mapped task: its first instance)."""
    return {ti.task_id: ti.state for ti in dagrun.get_task_instances() if ti.map_index < 1}
